"""What the framework helpers share: the header, the public URL, the checks.

Knows no web framework: each helper hands over the plain parts of its request
and turns a refusal into its framework's 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

import attrs

from signalwire_calls.webhooks._callback import CallStatusCallback, parse_status_callback
from signalwire_calls.webhooks._signature import verify_signature

#: Read in this order: SignalWire's own header, then the one its validators accept as a
#: fallback (API-NOTES §10.1).
SIGNATURE_HEADERS = ("X-SignalWire-Signature", "X-Twilio-Signature")
_FORM = "application/x-www-form-urlencoded"


class RefusedError(Exception):
    """The request is not a verified status callback; the message says why (no secrets)."""


@attrs.frozen
class Incoming:
    """The parts of an HTTP request that verifying a status callback needs.

    Attributes:
        method: The request method, upper case.
        scheme: ``http`` or ``https``, as the server saw the connection.
        host: The ``Host`` header (host and optional port).
        target: The raw request target: path and query string, as sent.
        content_type: The media type of the body, lower case, without parameters.
        body: The raw body.
        header: Look a request header up by name, case-insensitively.
    """

    method: str
    scheme: str
    host: str
    target: str
    content_type: str
    body: bytes
    header: Callable[[str], str | None]


def signature_of(header: Callable[[str], str | None]) -> str | None:
    """Return the first non-empty signature header, or ``None``."""
    for name in SIGNATURE_HEADERS:
        value = header(name)
        if value:
            return value
    return None


def public_url(incoming: Incoming, *, trust_forwarded: bool) -> str:
    """Rebuild the URL SignalWire requested from the request, optionally through a proxy.

    ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are read only when the caller trusts
    its proxy; with several proxies the first (client-side) value counts.
    """
    scheme, host = incoming.scheme, incoming.host
    if trust_forwarded:
        proto = _first(incoming.header("X-Forwarded-Proto")).lower()
        if proto in {"http", "https"}:
            scheme = proto
        host = _first(incoming.header("X-Forwarded-Host")) or host
    return f"{scheme}://{host}{incoming.target}"


def check(
    incoming: Incoming,
    *,
    signing_key: str | Iterable[str],
    url: str | None,
    trust_forwarded: bool,
) -> CallStatusCallback:
    """Verify and parse a status callback request.

    A ``POST`` carries its parameters as a form body, signed after the URL; a ``GET``
    carries them in the query string, so only the URL is signed (Twilio's rule,
    API-NOTES §10.2).

    Raises:
        RefusedError: The request is not a verified status callback.
        DecodeError: It is verified but its parameters are not a valid callback.
        ConfigError: The key or the explicit URL is unusable.
    """
    signature = signature_of(incoming.header)
    if url is None:
        url = public_url(incoming, trust_forwarded=trust_forwarded)
        if not urlsplit(url).hostname:  # the Host header is the sender's to choose
            raise RefusedError("the request has no usable Host header")
    if incoming.method == "GET":
        signed: list[tuple[str, str]] | None = None
        pairs = _decode(incoming.target.partition("?")[2], "query string")
    elif incoming.method == "POST":
        if incoming.body and incoming.content_type != _FORM:
            raise RefusedError(
                f"a status callback body is form-encoded, not {incoming.content_type!r}"
            )
        try:
            text = incoming.body.decode("utf-8")
        except UnicodeDecodeError:
            raise RefusedError("the form body is not UTF-8") from None
        signed = pairs = _decode(text, "form body")
    else:
        raise RefusedError(f"status callbacks are sent with POST or GET, not {incoming.method}")
    if not verify_signature(signing_key=signing_key, url=url, signature=signature, params=signed):
        if not signature:
            raise RefusedError("the request has no X-SignalWire-Signature header")
        raise RefusedError("the signature does not match")
    return parse_status_callback(pairs)


def _decode(text: str, what: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise RefusedError(f"the {what} is not valid form encoding") from None


def _first(value: str | None) -> str:
    return (value or "").split(",", 1)[0].strip()
