"""Verify and parse the status callbacks SignalWire sends about calls.

:func:`verify_signature` checks a request's signature (both of SignalWire's schemes,
key rotation, the URL variants its validators accept); :func:`parse_status_callback`
turns the form fields into a typed :class:`CallStatusCallback`. The framework helpers
do both for a request and answer ``403`` when the signature is wrong:
:func:`verify_aiohttp_request` for :mod:`aiohttp.web`, :func:`verify_starlette_request`
and :func:`status_callback_dependency` for Starlette and FastAPI. No web framework is
imported until its helper is called.
"""

from __future__ import annotations

from signalwire_calls.webhooks._aiohttp import verify_aiohttp_request
from signalwire_calls.webhooks._asgi import status_callback_dependency, verify_starlette_request
from signalwire_calls.webhooks._callback import CallStatusCallback, parse_status_callback
from signalwire_calls.webhooks._request import SIGNATURE_HEADERS
from signalwire_calls.webhooks._signature import verify_signature

__all__ = [
    "SIGNATURE_HEADERS",
    "CallStatusCallback",
    "parse_status_callback",
    "status_callback_dependency",
    "verify_aiohttp_request",
    "verify_signature",
    "verify_starlette_request",
]
