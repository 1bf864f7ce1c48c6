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
started ``FakeSignalWire(calls=100, seed=1)``. From a shell::

    python -m signalwire_calls.testing --port 8080 --calls 10000 --faults flaky

The test kit is an independent oracle of the API: it imports nothing of the
client but :class:`~signalwire_calls.CallsClient` (lazily, for :meth:`FakeSignalWire.client`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING

from signalwire_calls.testing._callbacks import CallbackDelivery
from signalwire_calls.testing._faults import FaultProfile, RequestRecord
from signalwire_calls.testing._server import FakeSignalWire

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["CallbackDelivery", "FakeSignalWire", "FaultProfile", "RequestRecord", "main", "serve"]


async def serve(
    port: int = 8080,
    calls: int = 10_000,
    seed: int = 1,
    faults: FaultProfile | None = None,
    *,
    host: str = "127.0.0.1",
    ready: Callable[[FakeSignalWire], object] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run an emulator until cancelled (or until ``stop`` is set).

    Args:
        port: The port to listen on (``0`` picks a free one).
        calls: How many calls to generate.
        seed: Seeds the data, the project id and the token.
        faults: Random faults to inject.
        host: The address to listen on.
        ready: Called with the started emulator, e.g. to print its address.
        stop: An event that ends the run when set.
    """
    async with FakeSignalWire(
        calls=calls, seed=seed, host=host, port=port, faults=faults, record_requests=False
    ) as fake:
        if ready is not None:
            ready(fake)
        await (stop or asyncio.Event()).wait()


def _announce(fake: FakeSignalWire) -> None:
    lines = (
        f"SignalWire emulator: {len(fake.call_sids)} calls",
        f"  base URL:   {fake.base_url}",
        f"  project id: {fake.project_id}",
        f"  API token:  {fake.api_token}",
        "Press Ctrl-C to stop.",
    )
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve an emulator from the command line until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m signalwire_calls.testing",
        description="Serve a local SignalWire Calls API with generated calls.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default="none", help=FaultProfile.SPEC_HELP)
    args = parser.parse_args(argv)
    try:
        faults = FaultProfile.parse(args.faults, args.seed)
    except ValueError as err:
        parser.error(f"--faults: {err}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(args.port, args.calls, args.seed, faults, host=args.host, ready=_announce)
        )
