"""An emulator served from its own event loop in a daemon thread.

For tests whose own thread blocks (a Dask ``compute()``, ``run_shard``, which runs
``asyncio.run`` itself) while worker processes or threads call the emulator.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Self, TypeVar

from signalwire_calls.testing import FakeSignalWire

T = TypeVar("T")


class BackgroundFake:
    """A started :class:`FakeSignalWire` on a loop in a daemon thread; a context manager."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.fake: FakeSignalWire | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the emulator's loop and wait (at most a minute) for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def __enter__(self) -> Self:
        self._thread.start()

        async def start() -> FakeSignalWire:
            fake = FakeSignalWire(**self._options)
            await fake.start()
            return fake

        self.fake = self.run(start())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fake is not None:
            self.run(self.fake.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def env(self) -> dict[str, str]:
        """The ``SIGNALWIRE_*`` variables that point a client (or a worker) at it."""
        assert self.fake is not None
        return {
            "SIGNALWIRE_BASE_URL": self.fake.base_url,
            "SIGNALWIRE_PROJECT_ID": self.fake.project_id,
            "SIGNALWIRE_API_TOKEN": self.fake.api_token,
        }
