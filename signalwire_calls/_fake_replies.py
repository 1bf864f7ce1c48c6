"""The emulator's fault and reply machinery: scripted faults and how a reply is sent.

:class:`_Replies` is a base of :class:`~signalwire_calls.testing.FakeSignalWire`
(in ``_fake_server.py``, which routes and authenticates requests): it holds the
scripted faults, picks the fault for a request, and writes the reply, an error
body, a reset or a truncated body.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from signalwire_calls._fake_data import dump_json
from signalwire_calls._fake_faults import FaultKind, Scripted

if TYPE_CHECKING:
    from signalwire_calls._fake_faults import FaultProfile

__all__ = ["_Replies"]

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


class _Replies:
    """Scripted faults and replies; :class:`FakeSignalWire` sets the attributes declared here."""

    faults: FaultProfile
    _scripted: dict[str, list[Scripted]]
    _closing: asyncio.Event

    # -- faults -------------------------------------------------------------

    def fail(
        self,
        sid_or_all: str | None,
        status: int = 503,
        times: int | None = 2,
        retry_after: float | None = None,
        kind: FaultKind = "status",
    ) -> None:
        """Script the next ``times`` requests for a SID to fail (``None``: every one).

        Args:
            sid_or_all: A call SID, ``"list"`` for list requests, or ``"*"``/``None``
                for every request. A SID's own script is used before the ``"*"`` one.
            status: The HTTP status of a ``"status"`` fault.
            times: How many requests fail; ``None`` keeps failing until :meth:`clear_faults`.
            retry_after: Seconds sent as ``Retry-After`` (429 always sends one).
            kind: ``"status"``, ``"reset"``, ``"truncate"`` or ``"hang"``.
        """
        key = "*" if sid_or_all in {None, "*"} else str(sid_or_all)
        self._scripted.setdefault(key, []).append(Scripted(kind, status, times, retry_after))

    def clear_faults(self) -> None:
        """Forget every scripted fault (the random :attr:`faults` profile stays)."""
        self._scripted.clear()

    def _scripted_fault(self, key: str) -> Scripted | None:
        for name in (key, "*"):
            queue = self._scripted.get(name)
            if queue:
                fault = queue[0]
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                return fault
        return None

    def _send(
        self,
        request: web.BaseRequest,
        kind: FaultKind | None,
        status: int,
        body: bytes,
        retry_after: float | None,
    ) -> web.Response:
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            # Writing this response fails on the aborted transport; aiohttp drops it quietly.
            return web.Response()
        if kind == "truncate":
            return self._truncate(request, body)
        if kind == "status" and status == 429 and retry_after is None:  # noqa: PLR2004
            retry_after = self.faults.retry_after
        response = web.Response(
            body=body or self._error_body(status), status=status, content_type=None
        )
        response.headers["Content-Type"] = _JSON
        if retry_after is not None:
            response.headers["Retry-After"] = f"{retry_after:g}"
        if status == 405:  # noqa: PLR2004
            response.headers["Allow"] = "GET"
        return response

    def _pick_fault(self, sid: str | None) -> tuple[FaultKind | None, int, float | None]:
        scripted = self._scripted_fault(sid or "list") if self._scripted else None
        if scripted is not None:
            return scripted.kind, scripted.status, scripted.retry_after
        kind, status = self.faults.draw()
        return kind, status, None

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, or stop early and return ``True`` when the emulator is closing."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _error_body(status: int, code: int | None = None, message: str | None = None) -> bytes:
        default_code, default_message = _MESSAGES.get(status, (20001, "Unknown error"))
        return dump_json(
            {
                "code": code or default_code,
                "message": message or default_message,
                "more_info": _MORE_INFO,
                "status": status,
            }
        )

    @staticmethod
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
