"""``signalwire-calls serve`` (the local emulator) and ``signalwire-calls demo``."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections import Counter

import click

from signalwire_calls import BulkProgress
from signalwire_calls._cli._common import (
    EXIT_INTERRUPTED,
    EXIT_LOOKUPS,
    EXIT_OK,
    run_main,
    stop_on_signals,
    until_signal,
)
from signalwire_calls._cli._output import Counts, ProgressBar
from signalwire_calls.testing import FakeSignalWire, FaultProfile

__all__ = ["demo", "serve"]


def _faults_option(default: str) -> click.Option:
    def convert(ctx: click.Context, _param: click.Parameter, value: str) -> FaultProfile:
        try:
            return FaultProfile.parse(value, ctx.params.get("seed", 1))
        except ValueError as err:
            raise click.BadParameter(str(err)) from None

    return click.Option(
        ["--faults"],
        default=default,
        show_default=True,
        help=FaultProfile.SPEC_HELP + ".",
        callback=convert,
    )


@click.command(
    params=[_faults_option("none")],
    epilog="Prints export lines for SIGNALWIRE_BASE_URL, SIGNALWIRE_PROJECT_ID and "
    "SIGNALWIRE_API_TOKEN (the emulator's own credentials, not real ones).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--calls",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="How many calls to generate.",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    is_eager=True,
    help="Seeds the calls, project id and token.",
)
def serve(host: str, port: int, calls: int, seed: int, faults: FaultProfile) -> None:
    """Run the local SignalWire emulator until Ctrl-C."""

    def ready(fake: FakeSignalWire) -> None:
        click.echo(
            f"signalwire-calls emulator: {len(fake.call_sids):,} calls (seed {seed}), "
            f"faults: {faults.describe()}\n"
            f"export SIGNALWIRE_BASE_URL={fake.base_url}\n"
            f"export SIGNALWIRE_PROJECT_ID={fake.project_id}\n"
            f"export SIGNALWIRE_API_TOKEN={fake.api_token}\n"
            "(an emulator-only token, not a real credential) Press Ctrl-C to stop."
        )
        sys.stdout.flush()

    async def main() -> None:
        from signalwire_calls.testing import serve as run_emulator  # noqa: PLC0415

        stop = asyncio.Event()
        stop_on_signals(stop.set)
        await run_emulator(port, calls, seed, faults, host=host, ready=ready, stop=stop)

    run_main(main())
    sys.exit(EXIT_OK)


@click.command(params=[_faults_option("flaky")])
@click.option(
    "--calls",
    type=click.IntRange(min=1),
    default=3_000,
    show_default=True,
    help="Calls in the emulator, all looked up.",
)
@click.option(
    "--missing",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Extra SIDs that do not exist.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Most lookups in flight.",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    is_eager=True,
    help="Seeds the calls and the faults.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar (default: if stderr is a terminal).",
)
def demo(  # noqa: PLR0917 - one parameter per flag
    calls: int,
    missing: int,
    concurrency: int,
    seed: int,
    progress: bool | None,
    faults: FaultProfile,
) -> None:
    """Bulk-fetch calls from a local, deliberately unreliable emulator: no account needed."""
    rng = random.Random(seed)  # noqa: S311 - demo data
    counts = Counts()
    limits: list[int] = []
    echo = click.echo

    async def main() -> tuple[FakeSignalWire, int, bool]:
        async with FakeSignalWire(
            calls=calls, seed=seed, faults=faults, record_requests=False
        ) as fake:
            sids = fake.call_sids + [
                str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(missing)
            ]
            rng.shuffle(sids)
            echo("signalwire-calls demo: no account needed, nothing leaves this machine.\n")
            echo(f"1. Started a local SignalWire emulator at {fake.origin} with {calls:,} calls.")
            echo(f"   It misbehaves on purpose: {faults.describe()}.")
            with ProgressBar("demo", len(sids), enabled=progress) as bar:
                async with fake.client() as client:

                    def on_progress(progress: BulkProgress) -> None:
                        bar.update(progress.done, progress.failed)
                        limits.append(progress.limit)

                    async def consume() -> None:
                        # Said here, once SIGTERM and Ctrl-C stop the lookups cleanly.
                        echo(
                            f"2. Looking up {len(sids):,} SIDs ({missing:,} of them do not "
                            f"exist) with CallsClient.iter_call_results("
                            f"concurrency={concurrency}) ..."
                        )
                        counts.started = time.monotonic()
                        results = client.iter_call_results(
                            sids, concurrency=concurrency, on_progress=on_progress
                        )
                        async for result in results:
                            if counts.count(result) == "failed":
                                bar.say(f"failed {result.sid}: {result.error}")

                    # SIGTERM as well as Ctrl-C: stop cleanly and report what was done.
                    interrupted = await until_signal(consume())
            return fake, sum(fake.attempts(sid) for sid in sids), interrupted

    fake, requests, interrupted = run_main(main())
    elapsed = counts.elapsed
    injected: Counter[str] = Counter()
    for kind, n in fake.faults_injected.items():
        injected["5xx" if kind.startswith("5") else kind] += n
    by_kind = ", ".join(f"{kind}: {n:,}" for kind, n in injected.most_common())
    total = sum(injected.values())
    fate = (
        "all absorbed by retries"
        if not counts.failed
        else f"{counts.failed:,} SIDs still failed after retries"
    )
    looked_up = counts.found + counts.missing + counts.failed  # all of them unless interrupted
    rate = looked_up / elapsed if elapsed else 0.0
    lines = [
        "",
        f"   found     {counts.found:>7,}",
        f"   missing   {counts.missing:>7,}   (404: no such call; reported, not fatal)",
        f"   failed    {counts.failed:>7,}",
        f"   requests  {requests:>7,}   for {looked_up:,} SIDs: {total:,} faults injected, {fate}",
        *([f"             ({by_kind})"] if by_kind else []),
        f"   limit     {min(limits, default=concurrency):>7}   lowest concurrency (halved on 429s)",
        f"   elapsed   {elapsed:>7.1f} s ({rate:,.0f} calls/s)",
        "",
        "Next: `signalwire-calls serve` runs this emulator for your own code, and",
        "`signalwire-calls fetch --input sids.txt --output calls.jsonl` exports real calls.",
    ]
    if interrupted:
        lines.insert(1, "   interrupted: the figures below are for the lookups done so far")
    echo("\n".join(lines))
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_LOOKUPS if counts.failed else EXIT_OK)
