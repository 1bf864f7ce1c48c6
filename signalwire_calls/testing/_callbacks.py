"""Signed status callbacks, sent as the service sends them (API-NOTES §10.1-§10.4).

Scheme B, Twilio's, which compat status callbacks use: the base64 HMAC-SHA1, keyed
with the project's Signing Key, of the URL followed by ``name + value`` of every
form parameter sorted by name, in the ``X-SignalWire-Signature`` header. For a
``GET`` callback the parameters are in the query string and the URL alone is signed.

Written here from the notes, not with :mod:`signalwire_calls.webhooks`: the test kit
is an independent oracle of the service, so the verifier is tested against it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import string
from typing import Final
from urllib.parse import urlencode

import aiohttp
import attrs
from yarl import URL

__all__ = ["CallbackDelivery", "deliver", "sign", "signing_key"]

SIGNATURE_HEADER: Final = "X-SignalWire-Signature"
_KEY_ALPHABET: Final = string.ascii_letters + string.digits


def signing_key(seed: int) -> str:
    """Return a deterministic Signing Key of the real form, ``PSK_`` and 24 alphanumerics."""
    rng = random.Random(f"signalwire-fake-signing-key:{seed}")  # noqa: S311 - test data
    return "PSK_" + "".join(rng.choice(_KEY_ALPHABET) for _ in range(24))


def sign(key: str, url: str, params: dict[str, str] | None) -> str:
    """Return the Scheme B signature of a request to ``url`` with form ``params``."""
    fields = params or {}
    text = url + "".join(name + fields[name] for name in sorted(fields))
    digest = hmac.new(key.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


@attrs.frozen
class CallbackDelivery:
    """One status callback the emulator sent.

    Attributes:
        url: The URL requested (for a ``GET``, with the parameters in its query).
        method: ``"POST"`` (form-encoded body) or ``"GET"``.
        params: The parameters sent, by name.
        signature: The ``X-SignalWire-Signature`` header sent.
        status: The HTTP status your server answered, or ``None`` if none came.
        error: Why no answer came (connection refused, timeout), or ``None``.
    """

    url: str
    method: str
    params: dict[str, str]
    signature: str
    status: int | None = None
    error: str | None = None


async def deliver(
    session: aiohttp.ClientSession, key: str, url: str, method: str, params: dict[str, str]
) -> CallbackDelivery:
    """Send one callback and record how the receiver answered; never raises for it."""
    if method == "GET":
        target = url + ("&" if "?" in url else "?") + urlencode(params)
        signature = sign(key, target, None)
        # Sent exactly as signed: no requoting of the query.
        request = session.get(URL(target, encoded=True), headers={SIGNATURE_HEADER: signature})
    else:
        target = url
        signature = sign(key, url, params)
        request = session.post(
            url,
            data=urlencode(params).encode(),
            headers={
                SIGNATURE_HEADER: signature,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    record = CallbackDelivery(target, method, dict(params), signature)
    try:
        async with request as response:
            await response.read()
            return attrs.evolve(record, status=response.status)
    except (aiohttp.ClientError, TimeoutError) as err:
        return attrs.evolve(record, error=f"{type(err).__name__}: {err}")
