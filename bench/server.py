"""A loopback HTTP/1.1 server that answers every GET with a realistic Call JSON, fast.

Raw :class:`asyncio.Protocol`, keep-alive, pipelining-safe, no framework: the
point is that the server is never the bottleneck of a client benchmark. Each
body is one of 20,000 distinct templates (served in turn) with the
requested SID spliced in (the last path segment, without ``.json`` or a query),
so that clients which check the SID they get back (``get_call`` does) see a
consistent answer.

Run it in its own process with :func:`start` (pinned to a core if asked).
"""

# ruff: noqa: PLC0415 - the contenders and plotting are optional extras, imported when used

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import sys
from pathlib import Path
from typing import Self

PLACEHOLDER = b"@@SID@@"
_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Connection: keep-alive\r\n"
    b"Content-Length: %d\r\n\r\n"
)


class _CallProtocol(asyncio.Protocol):
    __slots__ = ("_buf", "_parts", "_transport")
    _served = 0  # shared by all connections: successive answers differ

    def __init__(self, parts: list[list[bytes]]) -> None:
        self._parts = parts
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            line_end = buf.find(b"\r\n")
            path = buf[:line_end].split(b" ", 2)[1]
            buf = buf[end + 4 :]  # GETs only: no request body to skip
            sid = path.split(b"?", 1)[0].rsplit(b"/", 1)[-1]
            sid = sid.removesuffix(b".json")
            _CallProtocol._served += 1
            body = sid.join(self._parts[_CallProtocol._served % len(self._parts)])
            out.append(_HEAD % len(body))
            out.append(body)
        self._buf = buf
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


async def _serve(sock: socket.socket, bodies: list[bytes], ready: object) -> None:
    parts = [body.split(PLACEHOLDER) for body in bodies]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _CallProtocol(parts), sock=sock, backlog=1024)
    ready.set()  # type: ignore[attr-defined]
    async with server:
        await server.serve_forever()


def _main(sock: socket.socket, body: list[bytes], cpu: int | None, ready: object) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        import uvloop  # the server should be as fast as it can be

        uvloop.run(_serve(sock, body, ready))
    except ImportError:  # pragma: no cover
        asyncio.run(_serve(sock, body, ready))


class Server:
    """A running server process; use as a context manager."""

    def __init__(self, bodies: bytes | list[bytes], *, cpu: int | None = None) -> None:
        body = [bodies] if isinstance(bodies, bytes) else bodies
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self.port: int = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        # spawn re-imports this module by path: make sure it can be found
        sys.path.insert(0, str(Path(__file__).parent))
        self._process = ctx.Process(
            target=_main, args=(sock, body, cpu, ready), daemon=True, name="bench-server"
        )
        self._process.start()
        sock.close()  # the child has its own copy
        if not ready.wait(30):
            self.close()
            raise RuntimeError("the benchmark server did not start")

    @property
    def pid(self) -> int:
        """The server process's id (its CPU time is in ``/proc/<pid>/stat``)."""
        assert self._process.pid is not None
        return self._process.pid

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
