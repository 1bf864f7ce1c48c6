"""How the emulator answers: scripted faults, error bodies, resets and cut-off bodies."""

from __future__ import annotations

from aiohttp import web

from signalwire_calls.testing._data import dump_json
from signalwire_calls.testing._faults import FaultKind, Scripted

__all__ = ["FaultScript", "error_body", "send"]

_JSON = "application/json; charset=utf-8"
_MORE_INFO = "https://signalwire.com/docs/compatibility-api/rest/error-codes"
_MESSAGES = {
    401: (20003, "Authentication failed"),
    404: (20404, "The requested resource was not found"),
    405: (20004, "Method not allowed"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20502, "Bad Gateway"),
    503: (20503, "Service Unavailable"),
    504: (20504, "Gateway Timeout"),
}


class FaultScript:
    """The faults scripted with :meth:`FakeSignalWire.fail`, per SID, ``"list"`` or ``"*"``."""

    def __init__(self) -> None:
        self._queues: dict[str, list[Scripted]] = {}

    def __bool__(self) -> bool:
        return bool(self._queues)

    def add(self, key: str, fault: Scripted) -> None:
        """Queue ``fault`` for the requests of ``key``."""
        self._queues.setdefault(key, []).append(fault)

    def clear(self) -> None:
        """Forget every scripted fault."""
        self._queues.clear()

    def next_for(self, key: str) -> Scripted | None:
        """Return the fault for the next request of ``key`` (its own, else ``"*"``'s)."""
        for name in (key, "*"):
            queue = self._queues.get(name)
            if queue:
                fault = queue[0]
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                return fault
        return None


def error_body(status: int, code: int | None = None, message: str | None = None) -> bytes:
    """Return the compat error body the service sends for ``status`` (API-NOTES §5.1)."""
    default_code, default_message = _MESSAGES.get(status, (20001, "Unknown error"))
    return dump_json(
        {
            "code": code or default_code,
            "message": message or default_message,
            "more_info": _MORE_INFO,
            "status": status,
        }
    )


def send(
    request: web.BaseRequest,
    kind: FaultKind | None,
    status: int,
    body: bytes,
    retry_after: float | None,
) -> web.Response:
    """Answer ``request``: normally, with an error status, a reset or a cut-off body."""
    if kind == "reset":
        if request.transport is not None:
            request.transport.abort()
        # Writing this response fails on the aborted transport; aiohttp drops it quietly.
        return web.Response()
    if kind == "truncate":
        return _truncate(request, body)
    response = web.Response(body=body or error_body(status), status=status, content_type=None)
    response.headers["Content-Type"] = _JSON
    if retry_after is not None:
        response.headers["Retry-After"] = f"{retry_after:g}"
    if status == 405:  # noqa: PLR2004
        response.headers["Allow"] = "GET"
    return response


def _truncate(request: web.BaseRequest, body: bytes) -> web.Response:
    """Send the head with the full Content-Length, half the body, then close."""
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {_JSON}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    if request.transport is not None:
        request.transport.write(head + body[: len(body) // 2])
        request.transport.close()
    return web.Response()  # its write fails on the closed transport, quietly
