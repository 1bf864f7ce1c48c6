"""Check the signature SignalWire puts on a webhook request (API-NOTES §10.1-§10.3).

Two schemes exist:

- **Scheme B** (compat/cXML, Twilio's; status callbacks use it): base64 HMAC-SHA1 over
  the URL followed by ``name + value`` of every form field, sorted by name. For a JSON
  body the URL carries ``bodySHA256=<hex sha256 of the body>``, the HMAC covers the
  URL only, and the body hash is checked on its own.
- **Scheme A** (SWML/RELAY JSON fetches): hex HMAC-SHA1 over the URL followed by the
  raw body.

Every accepted signature covers every byte of what the request carries: the URL and
the form fields, or the URL and the body. Nothing is accepted over the URL alone
when a body was given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import operator
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl, urlsplit

from signalwire_calls._errors import ConfigError
from signalwire_calls.webhooks._forms import Params, form_pairs

_DEFAULT_PORTS = {"https": 443, "http": 80}
_BODY_HASH = "bodySHA256"
#: A Scheme A signature is 40 lowercase hex digits; a Scheme B one is 28 base64 characters.
_HEX_LENGTH = 40


def verify_signature(
    *,
    signing_key: str | Iterable[str],
    url: str,
    signature: str | None,
    params: Params | None = None,
    body: bytes | str | None = None,
) -> bool:
    """Tell whether a webhook request was signed by SignalWire with one of your keys.

    Pass the decoded form fields as ``params`` for a form-encoded request (status
    callbacks, cXML requests), the raw body as ``body`` for a JSON request, or neither
    for a request whose fields are all in the URL (a ``GET`` callback).

    What is accepted, and why (the server's exact behaviour is not published, so each
    variant SignalWire's own validators accept is accepted here):

    - **URL**: as given, and with the port toggled: without a port, with the scheme's
      default one added (``:443``/``:80``); with any port, with it removed. Removing a
      non-default port follows Twilio's validators (V3d) rather than signalwire-python's.
      If the URL has a ``#fragment`` (SignalWire's ``#rt=`` timeouts), the URL without it is
      tried as well.
    - **Form fields**: sorted by name (code point order), a repeated name keeping every
      value in submission order (signalwire-python, the compat Node SDK); and, only when
      a name repeats, also the values of each name sorted and de-duplicated
      (twilio-python 7.x). The second variant does not bind the order or the count of
      the repeated values; the samples of real status callbacks repeat no name.
    - **Body**: if the URL has a ``bodySHA256`` query parameter, Scheme B over the URL
      alone and the body's SHA-256 must equal that parameter; then Scheme A (hex
      HMAC-SHA1 over the URL and the raw body). A signature over the URL alone never
      vouches for a body.
    - **Keys**: each key in turn, so the old and the new key both work during a rotation.

    Every comparison is constant-time (:func:`hmac.compare_digest`).

    Args:
        signing_key: The project's Signing Key (``PSK_...``, not the API token), or
            several keys (an iterable of ``str``) while one is being rotated.
        url: The full public URL SignalWire requested, as configured there, with its
            query string.
        signature: The ``X-SignalWire-Signature`` header (or, when absent, the
            ``X-Twilio-Signature`` one). ``None`` or empty returns ``False``.
        params: The decoded form fields: a mapping (a list value for a repeated name) or
            ``(name, value)`` pairs in submission order. For a multidict whose
            ``items()`` yields each name once (Starlette's ``FormData``), pass its pairs
            (``form.multi_items()``).
        body: The raw body of a JSON request, as bytes (``str`` is encoded as UTF-8).

    Returns:
        ``True`` if the signature is valid for one key and one accepted variant,
        otherwise ``False``. A bad or missing signature never raises.

    Raises:
        ConfigError: No key, an empty key, an empty or non-http(s) URL, or both
            ``params`` and ``body``.
        TypeError: An argument of the wrong type; the message names it.
    """
    keys = tuple(key.encode("utf-8") for key in check_keys(signing_key))
    _check_url(url)
    if params is not None and body is not None:
        raise ConfigError(
            "pass params= (the decoded form fields) or body= (a raw JSON body), not both"
        )
    raw_body = _body_bytes(body) if body is not None else None
    pairs = form_pairs(params, argument="params") if params is not None else []
    if signature is not None and not isinstance(signature, str):
        raise TypeError(
            f"signature must be the header value as a str, got {type(signature).__name__}"
        )
    if not signature:
        return False
    # compare_digest refuses non-ASCII str; as bytes a foreign character simply mismatches.
    expected = signature.encode("utf-8", "surrogateescape")
    if raw_body is not None:
        return _verify_body(keys, url, expected, raw_body)
    tails = list(_form_tails(pairs))
    return any(
        _matches(_scheme_b(key, candidate + tail), expected)
        for key in keys
        for candidate in _candidate_urls(url)
        for tail in tails
    )


def _verify_body(keys: tuple[bytes, ...], url: str, expected: bytes, body: bytes) -> bool:
    """Check a JSON body's signature: Scheme B with ``bodySHA256``, then Scheme A."""
    body_hash = _query_value(url, _BODY_HASH)
    if body_hash is not None:
        actual = hashlib.sha256(body).hexdigest().encode()
        body_ok = hmac.compare_digest(actual, body_hash.lower().encode("utf-8", "replace"))
        if body_ok and any(
            _matches(_scheme_b(key, candidate), expected)
            for key in keys
            for candidate in _candidate_urls(url)
        ):
            return True
    if len(expected) != _HEX_LENGTH:
        return False
    return any(
        _matches(_scheme_a(key, candidate.encode() + body), expected.lower())
        for key in keys
        for candidate in _candidate_urls(url)
    )


def _scheme_b(key: bytes, text: str) -> bytes:
    return base64.b64encode(hmac.digest(key, text.encode("utf-8"), hashlib.sha1))


def _scheme_a(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).hexdigest().encode()


def _matches(computed: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(computed, expected)


def _form_tails(pairs: list[tuple[str, str]]) -> Iterator[str]:
    """Yield the signed field string under each accepted rule for repeated names."""
    ordered = sorted(pairs, key=operator.itemgetter(0))  # stable: repeats keep their order
    yield "".join(name + value for name, value in ordered)
    names = [name for name, _ in ordered]
    if len(set(names)) != len(names):
        yield "".join(
            name + value
            for name, group in itertools.groupby(ordered, key=operator.itemgetter(0))
            for value in sorted({value for _, value in group})
        )


def _candidate_urls(url: str) -> list[str]:
    """Return the URL variants to try, the URL as given first, without duplicates."""
    bases = [url]
    if "#" in url:
        bases.append(url.partition("#")[0])
    candidates: list[str] = []
    for base in bases:
        for candidate in (base, *_port_variants(base)):
            if candidate not in candidates:
                candidates.append(candidate)
    return candidates


def _port_variants(url: str) -> list[str]:
    """Return the URL with its port removed, or with the default port added if it has none."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None:
        return []
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, port = _split_port(hostport)
    if port is None:
        hostport = f"{host}:{default}"
    elif port:
        hostport = host
    else:  # a bare "host:" is left alone
        return []
    # Splice the new netloc into the URL as given: urlunsplit() would drop a bare "?".
    start = url.index("//") + 2
    return [url[:start] + f"{userinfo}{at}{hostport}" + url[start + len(parts.netloc) :]]


def _split_port(hostport: str) -> tuple[str, str | None]:
    """Split ``host:port`` (IPv6 hosts in brackets) into the host text and the port digits."""
    head, colon, tail = hostport.rpartition(":")
    if not colon or "]" in tail or (head.count(":") and not head.startswith("[")):
        return hostport, None
    if tail and not (tail.isascii() and tail.isdigit()):
        return hostport, None
    return head, tail


def _query_value(url: str, name: str) -> str | None:
    """Return the first value of a query parameter of the URL, if it has one."""
    query = urlsplit(url).query
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return None


def check_keys(signing_key: str | Iterable[str]) -> tuple[str, ...]:
    """Return the key, or the keys, as a tuple, checking each (messages never quote a key).

    Raises:
        ConfigError: No key, or an empty one.
        TypeError: A key that is not a ``str``.
    """
    if isinstance(signing_key, str):
        candidates: tuple[object, ...] = (signing_key,)
    elif isinstance(signing_key, bytes | bytearray | memoryview):
        raise TypeError("signing_key must be a str (the Signing Key as shown), not bytes")
    else:
        try:
            candidates = tuple(signing_key)
        except TypeError:
            raise TypeError(
                f"signing_key must be a str or an iterable of str, got {type(signing_key).__name__}"
            ) from None
        if not candidates:
            raise ConfigError(
                "signing_key is an empty collection: pass at least the project's Signing Key"
            )
    keys = []
    for index, key in enumerate(candidates):
        where = "signing_key" if isinstance(signing_key, str) else f"signing_key[{index}]"
        if not isinstance(key, str):
            raise TypeError(f"{where} must be a str, got {type(key).__name__}")
        if not key:
            raise ConfigError(
                f"{where} is empty: use the project's Signing Key (Dashboard: API "
                "Credentials, Signing Key), not the API token"
            )
        keys.append(key)
    return tuple(keys)


def _check_url(url: object) -> None:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    if not url.lower().startswith(("https://", "http://")) or not urlsplit(url).netloc:
        raise ConfigError(
            f"url must be the full http(s) URL SignalWire requested, as configured there "
            f"(got {url[:100]!r})"
        )


def _body_bytes(body: object) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"body must be the raw request body as bytes or str, got {type(body).__name__}")
