"""The exception tree, and the pure mapping from an HTTP response to an exception.

::

    SignalWireError
    ├── ConfigError (also ValueError)      bad settings, caught before any I/O
    ├── TransportError                     no usable response after retries (see __cause__)
    │   ├── RequestTimeoutError            an attempt took longer than the client's timeout
    │   └── ConnectError                   no connection: refused, name not resolved, TLS failed
    │       └── UnreachableError           a bulk job stopped: nothing of it could connect
    ├── APIError                           a non-2xx answer: status, code, message, more_info
    │   ├── AuthenticationError            401
    │   ├── PermissionDeniedError          403
    │   ├── NotFoundError                  404
    │   ├── RateLimitedError               429 (.retry_after)
    │   └── ServerError                    5xx
    ├── DecodeError                        a 2xx body that is not a valid Call or page
    ├── BulkLookupError                    raised by BulkResult.raise_for_failures(): .failed
    └── WaitTimeoutError (also TimeoutError) wait_for_call() passed its deadline: .call

No message ever contains the API token or the Authorization header: URLs are kept
without userinfo, and the requester scrubs the credentials from what a server
echoes back before anything of it reaches an exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signalwire_calls import _json

if TYPE_CHECKING:
    from signalwire_calls._models import Call

__all__ = [
    "APIError",
    "AuthenticationError",
    "BulkLookupError",
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "SignalWireError",
    "TransportError",
    "UnreachableError",
    "WaitTimeoutError",
    "error_from_response",
]

#: How much of an unparseable error body is quoted in a message.
_SNIPPET = 200


class SignalWireError(Exception):
    """The base of every error this library raises."""


class ConfigError(SignalWireError, ValueError):
    """The client's settings are unusable; raised before any request is sent."""


class TransportError(SignalWireError):
    """No usable HTTP response arrived, even after retries.

    ``__cause__`` is the underlying :mod:`aiohttp` or OS error.
    """

    def __init__(self, message: str, *, method: str = "GET", url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class RequestTimeoutError(TransportError):
    """An attempt took longer than the client's per-attempt ``timeout``."""


class ConnectError(TransportError):
    """No connection could be made: refused, the name did not resolve, or TLS failed.

    ``host`` is what could not be reached (``host:port``).
    """

    def __init__(self, message: str, *, method: str = "GET", url: str = "", host: str = "") -> None:
        super().__init__(message, method=method, url=url)
        self.host = host


class UnreachableError(ConnectError):
    """A bulk job stopped early: it could not connect, and no lookup of it had succeeded.

    Raised from the job's iterator instead of one failure per SID, within the
    retries of the first lookups. Once any lookup of a job has been answered, a
    later outage is retried and reported per SID instead.

    Attributes:
        host: What could not be reached (``host:port``).
        not_tried: SIDs of the input left without a result (``None`` if the
            input has no ``len()``).
    """

    def __init__(
        self, message: str, *, url: str = "", host: str = "", not_tried: int | None
    ) -> None:
        super().__init__(message, url=url, host=host)
        self.not_tried = not_tried


class DecodeError(SignalWireError):
    """A successful response whose body is not what the API promises.

    ``field`` is the JSON path of the offending value (``$.duration``), or ``$``
    when the body as a whole is unusable.
    """

    def __init__(self, message: str, *, field: str = "$", sid: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.sid = sid


class BulkLookupError(SignalWireError):
    """Some lookups of a bulk job failed; ``failed`` maps each SID to its error."""

    def __init__(self, failed: dict[str, SignalWireError | ValueError]) -> None:
        self.failed = failed
        sample = ", ".join(f"{sid}: {err}" for sid, err in list(failed.items())[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""  # noqa: PLR2004
        super().__init__(f"{len(failed)} lookup(s) failed: {sample}{more}")


class WaitTimeoutError(SignalWireError, TimeoutError):
    """:meth:`~signalwire_calls.CallsClient.wait_for_call` reached its deadline first.

    Also a :class:`TimeoutError`, so ``except TimeoutError`` catches it too.

    Attributes:
        sid: The SID of the call that was awaited.
        until: What was awaited: ``"final"``, ``"priced"``, or the statuses (a
            :class:`frozenset` of strings).
        timeout: The deadline, in seconds.
        call: The last state of the call that a poll returned, or ``None`` when no
            poll answered before the deadline.
    """

    def __init__(
        self,
        message: str,
        *,
        sid: str = "",
        until: str | frozenset[str] = "",
        timeout: float = 0.0,
        call: Call | None = None,
    ) -> None:
        super().__init__(message)
        self.sid = sid
        self.until = until
        self.timeout = timeout
        self.call = call

    def __str__(self) -> str:
        # OSError (TimeoutError's base) would format its args as (errno, strerror).
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (type(self), (str(self),), self.__dict__.copy())


class APIError(SignalWireError):
    """The API answered with a non-2xx status.

    Attributes:
        status: The HTTP status code.
        code: SignalWire's numeric error code (``20404``), when the body had one.
        message: The API's message, or a short description of the body.
        more_info: The documentation link the API sent, if any.
        method: The HTTP method of the request.
        url: The request URL (it never contains credentials).
    """

    def __init__(
        self,
        status: int,
        *,
        code: int | None = None,
        message: str = "",
        more_info: str | None = None,
        method: str = "GET",
        url: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.more_info = more_info
        self.method = method
        self.url = url
        super().__init__(self._describe())

    def _describe(self) -> str:
        code = f" (code {self.code})" if self.code is not None else ""
        what = f"{self.method} {self.url}" if self.url else self.method
        text = f": {self.message}" if self.message else ""
        return f"HTTP {self.status}{code} from {what}{text}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (_rebuild, (type(self), self.status, self.__dict__.copy()))


def _rebuild(cls: type[APIError], _status: int, state: dict[str, Any]) -> APIError:
    err = cls.__new__(cls)
    Exception.__init__(err, "")
    err.__dict__.update(state)
    err.args = (err._describe(),)  # noqa: SLF001
    return err


class AuthenticationError(APIError):
    """401: the project id or API token is wrong, or the token lacks the Voice scope."""


class PermissionDeniedError(APIError):
    """403: the token is valid but may not do this (SignalWire may also send 401 for this)."""


class NotFoundError(APIError):
    """404: there is no call with this SID in this project."""


class RateLimitedError(APIError):
    """429: too many requests; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, status: int, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(status, **kwargs)


class ServerError(APIError):
    """5xx: the service failed; such answers are retried before this is raised."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitedError,
}


def _parse_error_body(body: bytes) -> tuple[int | None, str, str | None]:
    """Return ``(code, message, more_info)`` from any of the API's error-body shapes.

    SignalWire sends several (API-NOTES §5.1): ``{"code", "message", "more_info",
    "status"}``; ``{"errors": [{"code": "30010", "message", "more_info"}]}`` with a
    string code; ``{"errors": ["text"]}``; ``{"error": "Not Found"}``; and a proxy
    may answer with HTML. Anything unrecognised becomes a short, scrubbed snippet.
    """
    text = body.decode("utf-8", "replace")
    try:
        data = _json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        if "errors" in data and isinstance(data["errors"], list) and data["errors"]:
            first = data["errors"][0]
            if isinstance(first, dict):
                message = _first_str(first, "message", "detail", "title") or ""
                return _as_code(first.get("code")), message, _first_str(first, "more_info", "url")
            if isinstance(first, str):
                return None, "; ".join(str(e) for e in data["errors"]), None
        message = _first_str(data, "message", "detail", "error") or ""
        if message or "code" in data:
            return _as_code(data.get("code")), message, _first_str(data, "more_info")
    snippet = " ".join(text.split())[:_SNIPPET]
    return None, snippet, None


def _first_str(data: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _as_code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def error_from_response(
    status: int,
    body: bytes,
    *,
    method: str = "GET",
    url: str = "",
    retry_after: float | None = None,
) -> APIError:
    """Map a non-2xx response to the matching :class:`APIError` subclass.

    Pure: no I/O, so every status and body shape is testable on its own.

    Args:
        status: The HTTP status code.
        body: The raw response body (possibly empty, HTML or truncated).
        method: The request method, for the message.
        url: The request URL without credentials, for the message.
        retry_after: The parsed ``Retry-After`` hint, for 429 (and 503).

    Returns:
        The exception to raise; never raises itself.
    """
    code, message, more_info = _parse_error_body(body)
    common: dict[str, Any] = {
        "code": code,
        "message": message,
        "more_info": more_info,
        "method": method,
        "url": url,
    }
    if status == 429:  # noqa: PLR2004
        return RateLimitedError(status, retry_after=retry_after, **common)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError  # noqa: PLR2004
    return cls(status, **common)
