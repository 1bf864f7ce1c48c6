"""The pytest plugin of ``signalwire_calls``: the ``signalwire_fake`` fixture.

Installed as a ``pytest11`` entry point, so any suite that has this package and
pytest-asyncio installed can use it without a ``conftest.py``::

    async def test_report(signalwire_fake):
        async with signalwire_fake.client() as client:
            call = await client.get_call(signalwire_fake.call_sids[0])
        assert call.sid == signalwire_fake.call_sids[0]

Without pytest-asyncio the plugin defines nothing, so it never breaks a pytest run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from signalwire_calls.testing import FakeSignalWire

__all__: list[str] = []

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture needs an event loop runner
    pass
else:
    __all__ += ["signalwire_fake"]

    @pytest_asyncio.fixture
    async def signalwire_fake() -> AsyncIterator[FakeSignalWire]:
        """Yield a started ``FakeSignalWire(calls=100, seed=1)`` on ``127.0.0.1``.

        Function-scoped: each test gets a fresh emulator (fresh request log, no
        scripted faults) and it is closed after the test. Use ``fake.client()`` for a
        ready :class:`~signalwire_calls.CallsClient`, ``fake.fail(...)`` to script
        faults and ``fake.requests``/``fake.attempts(sid)`` to assert on traffic.
        """
        from signalwire_calls.testing import FakeSignalWire  # noqa: PLC0415 - lazy

        async with FakeSignalWire(calls=100, seed=1) as fake:
            yield fake
