"""One GET to the API, and ``get_call``: the base that every part of ``CallsClient`` uses.

``_Requests`` builds the pooled session on first use, holds a connection slot for
each request, maps a failed answer to an exception and scrubs the credentials from
anything a server echoes back. Its state is set up by ``CallsClient.__init__``
(:mod:`signalwire_calls._client`); :func:`check_sid` lives here because
``get_call`` is the first to need it.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, cast

import aiohttp
from aiohttp import hdrs
from yarl import URL

from signalwire_calls._converter import structure_call
from signalwire_calls._errors import (
    DecodeError,
    RequestTimeoutError,
    TransportError,
    error_from_response,
)
from signalwire_calls._limit import AdaptiveLimit
from signalwire_calls._retry import AttemptsExhaustedError, RetryMiddleware, parse_retry_after
from signalwire_calls._session import build_session

if TYPE_CHECKING:
    from yarl._url import _InternalURLCache

    from signalwire_calls._models import Call

__all__ = ["check_sid", "host_parts"]

try:  # an optional speedup: about twice as fast as json for call bodies
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    _loads = json.loads


_SID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def check_sid(sid: object) -> str:
    """Return ``sid`` if it is a call SID (a UUID string), else raise ``ValueError``.

    SignalWire call SIDs are UUIDs without Twilio's ``CA`` prefix. Checking them
    before any I/O also means that nothing a caller passes can change the request
    path or query.
    """
    if isinstance(sid, str) and _SID.fullmatch(sid):
        return sid
    shown = repr(sid) if len(repr(sid)) <= 60 else repr(sid)[:57] + "..."  # noqa: PLR2004
    raise ValueError(
        f"Invalid call SID {shown}: expected a UUID such as "
        "'82e7850d-054e-4067-8c4f-6568acd96575' (SignalWire SIDs have no 'CA' prefix)"
    )


#: yarl's cached URL properties that follow from the scheme and host alone.
_HOST_PROPERTIES: Final = (
    "raw_user", "raw_password", "raw_host", "explicit_port", "port", "host",
    "host_subcomponent", "host_port_subcomponent",
)  # fmt: skip


def host_parts(base: URL) -> _InternalURLCache:
    """Return what a lookup URL built from ``base`` may take over from ``base``'s yarl cache.

    aiohttp reads a dozen properties of each request's URL (host, port, the
    Host header...); yarl computes each once per URL object and keeps it in the
    URL's private ``_cache`` dict. Every lookup URL has ``base``'s scheme and
    host, so those entries, computed once here and copied into each new URL,
    save about 7k instructions per lookup (docs/performance.md). This relies on a
    private detail of yarl, so it checks itself: unless a URL given these
    entries reads exactly like one computed afresh, it returns ``{}`` and each
    URL computes its own, as before.
    """
    cache = getattr(base, "_cache", None)
    if type(cache) is not dict:
        return {}  # pragma: no cover - a yarl that keeps no cache there
    try:
        for name in _HOST_PROPERTIES:
            getattr(base, name)
        parts = cast("_InternalURLCache", {k: cache[k] for k in _HOST_PROPERTIES if k in cache})
        probe = base.with_path("/probe", encoded=True)
        probe._cache.update(parts)  # noqa: SLF001
        fresh = base.with_path("/probe", encoded=True)
        same = all(getattr(probe, name) == getattr(fresh, name) for name in _HOST_PROPERTIES)
    except (AttributeError, TypeError):  # pragma: no cover - a yarl without these
        return {}
    return parts if same else {}


class _Requests:
    """The request path of :class:`~signalwire_calls.CallsClient` (its base class)."""

    # Set by CallsClient.__init__.
    _closed: bool
    _session: aiohttp.ClientSession | None
    _middleware: RetryMiddleware
    _headers: dict[str, str]
    _max_connections: int
    _timeout: float | None
    _ssl: ssl.SSLContext | bool
    _slots: AdaptiveLimit
    _request_options: dict[str, Any]
    _secrets: tuple[bytes, bytes]
    _calls_base: URL
    _calls_path: str
    _calls_host_parts: _InternalURLCache

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("This CallsClient is closed; create a new one")
        session = self._session
        if session is None:
            asyncio.get_running_loop()  # the session must belong to the running loop
            session = build_session(
                middleware=self._middleware,
                headers=self._headers,
                max_connections=self._max_connections,
                connect_timeout=self._timeout,
                ssl=self._ssl,
            )
            self._session = session
        return session

    # ---------------------------------------------------------------- requests

    async def _get(  # noqa: C901, PLR0912 - the request path, in one frame
        self, url: str | URL, *, sid: str | None = None, as_call: bool = False
    ) -> Any:
        """GET ``url`` (already encoded) and return its decoded JSON body.

        With ``as_call`` (and ``sid``), return the body structured as that call
        instead, after the request's pool slot is given back: one coroutine less
        per lookup than structuring in a caller.

        Raises:
            APIError: A non-2xx answer, after retries.
            TransportError: No answer, after retries.
            DecodeError: A 2xx body that is not JSON.
        """
        session = self._session
        if session is None or self._closed:
            session = self._ensure_session()
        if type(url) is not URL:  # yarl's URL cannot be subclassed
            url = URL(url, encoded=True)
        # Hold one of max_connections slots before the first attempt starts, so
        # that waiting for a pooled connection never eats into an attempt's
        # timeout (a user may gather thousands of get_call at once).
        slots = self._slots
        if slots.try_acquire() is None:
            await slots.acquire()
        try:
            response = await session.get(url, allow_redirects=False, **self._request_options)
            try:
                # The middleware has read the body (capped); read() would return this
                # same object after two more coroutines.
                body = response._body  # noqa: SLF001
                if body is None:  # pragma: no cover - only if aiohttp stops caching it there
                    body = await response.read()
                status = response.status
                if status < 300:  # noqa: PLR2004
                    try:
                        data = _loads(body)
                    except ValueError:
                        raise self._not_json(url, sid, response.content_type, body) from None
                else:
                    retry_after = parse_retry_after(response.headers.get(hdrs.RETRY_AFTER))
            finally:
                # Reading the whole body already gave the connection back to the pool
                # and closed the response; release() would still notify the payload
                # stream (about 5k instructions of a lookup's 454k).
                if not response.closed:
                    response.release()
        except AttemptsExhaustedError as exhausted:
            raise self._exhausted(exhausted, url, sid) from exhausted.__cause__
        except aiohttp.ClientError as err:  # not retryable: an invalid URL, a bad TLS setup
            shown = _without_query(url)
            raise TransportError(
                f"GET {shown}{_for(sid)} failed: {type(err).__name__}: {err}", url=shown
            ) from err
        finally:
            slots.release()
        if status < 300:  # noqa: PLR2004
            return self._to_call(sid, data) if as_call and sid is not None else data
        # Redirects are never followed, so a 3xx is an error too. The body is
        # scrubbed here, on the error path only: a server (or proxy) that echoes
        # the credentials must not get them into a message or a log.
        raise error_from_response(
            status,
            _scrub(body, self._secrets),
            method="GET",
            url=_without_query(url),
            retry_after=retry_after,
            token=None,
        )

    def _exhausted(
        self, exhausted: AttemptsExhaustedError, url: URL, sid: str | None
    ) -> TransportError:
        """Word the error of a request whose every attempt got no answer."""
        err = exhausted.__cause__
        shown = _without_query(url)
        if isinstance(err, TimeoutError):
            return RequestTimeoutError(
                f"GET {shown}{_for(sid)} timed out after {self._timeout}s "
                f"({exhausted.attempts} attempt(s))",
                url=shown,
            )
        return TransportError(
            f"GET {shown}{_for(sid)} failed after {exhausted.attempts} attempt(s): "
            f"{type(err).__name__}: {err}",
            url=shown,
        )

    def _not_json(self, url: URL, sid: str | None, content_type: str, body: bytes) -> DecodeError:
        start = _scrub(body[:200], self._secrets)[:40]
        return DecodeError(
            f"GET {_without_query(url)}{_for(sid)}: expected a JSON body, got "
            f"{content_type or 'no type'} ({len(body)} bytes) starting {start!r}",
            sid=sid,
        )

    def _scrubbed(self, err: DecodeError) -> DecodeError:
        """Return ``err`` with any echoed credential removed from its message."""
        text = str(err)
        clean = _scrub(text.encode(), self._secrets).decode()
        if clean == text:
            return err
        return DecodeError(clean, field=err.field, sid=err.sid)

    async def get_call(self, sid: str) -> Call:
        """Retrieve one call by its SID.

        Args:
            sid: The call's SID, a UUID string.

        Returns:
            The call, with every field typed.

        Raises:
            ValueError: ``sid`` is not a UUID (no request is sent).
            NotFoundError: There is no such call in this project.
            AuthenticationError: The credentials were refused.
            APIError: Any other error answer, after retries.
            TransportError: The API could not be reached, after retries.
            DecodeError: The API's answer is not a valid call.
        """
        return await self._fetch_call(check_sid(sid))

    def _fetch_call(self, sid: str) -> Coroutine[Any, Any, Call]:
        """:meth:`get_call` for a SID already checked (the bulk jobs check theirs first).

        A plain function returning ``_get``'s coroutine, which structures the call.
        """
        url = self._calls_base.with_path(self._calls_path + sid, encoded=True)
        if self._calls_host_parts:
            url._cache.update(self._calls_host_parts)  # noqa: SLF001 - see host_parts()
        return self._get(url, sid=sid, as_call=True)

    def _to_call(self, sid: str, data: Any) -> Call:
        """Structure the JSON of the call asked for as ``sid``."""
        try:
            call = structure_call(data)
        except DecodeError as err:
            raise self._scrubbed(err) from None
        if call.sid != sid and call.sid.lower() != sid.lower():
            mismatch = f"Asked for call {sid} but the API returned call {call.sid}"
            raise self._scrubbed(DecodeError(mismatch, field="$.sid", sid=sid))
        return call


def _without_query(url: URL) -> str:
    return str(url.with_query(None))


def _for(sid: str | None) -> str:
    return f" for call {sid}" if sid else ""


def _scrub(body: bytes, secrets: tuple[bytes, ...]) -> bytes:
    for secret in secrets:
        if secret in body:
            body = body.replace(secret, b"***")
    return body
