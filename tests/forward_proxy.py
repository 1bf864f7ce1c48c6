"""A loopback forward proxy for the proxy tests (tests/http, tests/cli): it counts what passes."""

from __future__ import annotations

import aiohttp
from aiohttp import web


class ForwardProxy:
    """A loopback forward proxy for http:// targets (absolute-form requests) that counts."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str | None]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = request.url  # absolute-form: the URL the client wants
        self.seen.append(
            {
                "target": str(target),
                "authorization": request.headers.get("Authorization"),
                "proxy_authorization": request.headers.get("Proxy-Authorization"),
            }
        )
        # Like a real proxy: hop-by-hop and proxy headers stay here.
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in {"host", "proxy-authorization", "proxy-connection", "connection"}
        }
        async with (
            aiohttp.ClientSession() as session,
            session.get(str(target), headers=headers, allow_redirects=False) as answer,
        ):
            body = await answer.read()
            return web.Response(status=answer.status, body=body, content_type=answer.content_type)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
