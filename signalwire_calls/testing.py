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

With pytest, the ``signalwire_fake`` fixture (installed with this package) yields a
started ``FakeSignalWire(calls=100, seed=1)``. From a shell::

    python -m signalwire_calls.testing --port 8080 --calls 10000 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING

from signalwire_calls._fake_server import FakeSignalWire, FaultProfile, RequestRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["FakeSignalWire", "FaultProfile", "RequestRecord", "main", "serve"]


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
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx answers")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="share of 429s")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="share of dropped links")
    parser.add_argument("--truncate-rate", type=float, default=0.0, help="share of cut bodies")
    parser.add_argument("--latency", type=float, default=0.0, help="max added latency (s)")
    args = parser.parse_args(argv)
    faults = FaultProfile(
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        reset_rate=args.reset_rate,
        truncate_rate=args.truncate_rate,
        latency=(0.0, args.latency),
        seed=args.seed,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(args.port, args.calls, args.seed, faults, host=args.host, ready=_announce)
        )


if __name__ == "__main__":
    main()
