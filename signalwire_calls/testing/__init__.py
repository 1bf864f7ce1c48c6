"""A local SignalWire emulator and test kit, for this library's tests and for yours.

:class:`FakeSignalWire` serves the Compatibility API's Calls resource on
``127.0.0.1`` with deterministic, realistic data: shaped like what the real service
sends (dash-formatted numbers, links without ``.json``, ``outbound-dial`` legs with a
parent, ``audio_in_mos`` as a string, older records without the newest keys), with
cursor paging, filters, the service's error bodies, and faults on demand::

    from signalwire_calls.testing import FakeSignalWire, FaultProfile

    async with FakeSignalWire(calls=1_000, seed=1) as fake:
        fake.fail(fake.call_sids[0], status=503, times=2)   # the next 2 GETs fail
        fake.faults = FaultProfile(error_rate=0.1, latency=(0.0, 0.02))
        async with fake.client() as client:
            call = await client.get_call(fake.call_sids[0])
        assert fake.attempts(fake.call_sids[0]) == 3

Calls placed with :meth:`FakeSignalWire.place_call` progress on the emulator's clock
(``queued`` to a final status, then priced) as ``await fake.advance(seconds)`` moves
it, and send signed status callbacks to their ``status_callback`` URL, so a bot's
``wait_for_call`` and webhook handler are tested without sleeping.

With pytest, the ``signalwire_fake`` fixture (installed with this package) yields a
started ``FakeSignalWire(calls=100, seed=1)``. From a shell, ``signalwire-calls serve``
runs one for any client (``python -m signalwire_calls.testing`` is the same command)::

    signalwire-calls serve --port 8080 --calls 10000 --faults flaky

The test kit is an independent oracle of the API: it imports nothing of the
client but :class:`~signalwire_calls.CallsClient` (lazily, for :meth:`FakeSignalWire.client`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from signalwire_calls.testing._callbacks import CallbackDelivery
from signalwire_calls.testing._data import EXAMPLE_SID, MISSING_SID
from signalwire_calls.testing._faults import FaultProfile, RequestRecord
from signalwire_calls.testing._server import FakeSignalWire

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "EXAMPLE_SID",
    "MISSING_SID",
    "CallbackDelivery",
    "FakeSignalWire",
    "FaultProfile",
    "RequestRecord",
    "serve",
]


async def serve(
    port: int = 8080,
    calls: int = 10_000,
    seed: int = 1,
    faults: FaultProfile | None = None,
    *,
    host: str = "127.0.0.1",
    example: bool = True,
    sids_file: str | Path | None = None,
    ready: Callable[[FakeSignalWire], object] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run an emulator until cancelled (or until ``stop`` is set): ``signalwire-calls serve``.

    Args:
        port: The port to listen on (``0`` picks a free one).
        calls: How many calls to generate.
        seed: Seeds the data, the project id and the token.
        faults: Random faults to inject.
        host: The address to listen on.
        example: Serve the documentation's call (:data:`EXAMPLE_SID`) too.
        sids_file: Write the SIDs served to this file, one per line, followed by
            :data:`MISSING_SID` (one that does not exist), as the docs' ``sids.txt``.
        ready: Called with the started emulator, e.g. to print its address.
        stop: An event that ends the run when set.
    """
    async with FakeSignalWire(
        calls=calls, seed=seed, host=host, port=port, faults=faults, record_requests=False
    ) as fake:
        if example:
            fake.add_example_call()
        if sids_file is not None:
            text = "\n".join([*fake.call_sids, MISSING_SID]) + "\n"
            await asyncio.to_thread(Path(sids_file).write_text, text, encoding="utf-8")
        if ready is not None:
            ready(fake)
        await (stop or asyncio.Event()).wait()
