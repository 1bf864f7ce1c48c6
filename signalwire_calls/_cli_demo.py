"""``signalwire-calls serve`` (the local emulator) and ``signalwire-calls demo``."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections import Counter

import click

from signalwire_calls._bulk import BulkProgress
from signalwire_calls._cli_common import (
    EXIT_INTERRUPTED,
    EXIT_LOOKUPS,
    EXIT_OK,
    run_main,
    stop_on_signals,
    until_signal,
)
from signalwire_calls._cli_output import Counts, ProgressBar
from signalwire_calls._errors import NotFoundError
from signalwire_calls._fake_server import FakeSignalWire, FaultProfile

__all__ = ["demo", "parse_faults", "serve"]

_FAULT_FIELDS = {
    "error": "error_rate",
    "5xx": "error_rate",
    "429": "rate_limit_rate",
    "rate-limit": "rate_limit_rate",
    "reset": "reset_rate",
    "truncate": "truncate_rate",
    "hang": "hang_rate",
    "hang-seconds": "hang_seconds",
    "retry-after": "retry_after",
    "latency": "latency",
}
#: Named fault sets: ``flaky`` is what ``demo`` uses.
FAULT_PRESETS = {
    "none": "",
    "flaky": "error=0.03,429=0.001,reset=0.01,truncate=0.005,latency=0.02",
}
_FAULTS_HELP = (
    "Comma-separated faults, e.g. 'error=0.05,429=0.02,reset=0.01,truncate=0.01,"
    "latency=0.05' (rates per request; latency in seconds, max or min:max), or a preset: "
    + ", ".join(FAULT_PRESETS)
)


def parse_faults(spec: str, seed: int = 1) -> FaultProfile:
    """Parse a ``--faults`` spec (or preset name) into a :class:`FaultProfile`."""
    spec = FAULT_PRESETS.get(spec.strip(), spec)
    options: dict[str, object] = {"seed": seed}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        field = _FAULT_FIELDS.get(name.strip().lower())
        if field is None:
            raise click.BadParameter(f"unknown fault {name!r}; use {', '.join(_FAULT_FIELDS)}")
        try:
            if field == "latency":
                low, _, high = value.rpartition(":")
                options[field] = (float(low or 0), float(high))
            else:
                options[field] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: expected {name}=NUMBER") from None
    return FaultProfile(**options)  # type: ignore[arg-type]


def _faults_option(default: str) -> click.Option:
    def convert(ctx: click.Context, _param: click.Parameter, value: str) -> FaultProfile:
        return parse_faults(value, ctx.params.get("seed", 1))

    return click.Option(
        ["--faults"], default=default, show_default=True, help=_FAULTS_HELP, callback=convert
    )


def _describe_faults(faults: FaultProfile) -> str:
    parts = [
        f"{rate:.1%} {what}"
        for rate, what in (
            (faults.error_rate, "server errors (5xx)"),
            (faults.rate_limit_rate, "rate limits (429)"),
            (faults.reset_rate, "dropped connections"),
            (faults.truncate_rate, "cut-off bodies"),
            (faults.hang_rate, f"hangs of {faults.hang_seconds:g} s"),
        )
        if rate
    ]
    low, high = faults.latency
    if high:
        parts.append(f"{low * 1000:g}-{high * 1000:g} ms latency")
    return ", ".join(parts) or "none"


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
            f"faults: {_describe_faults(faults)}\n"
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
            echo(f"   It misbehaves on purpose: {_describe_faults(faults)}.")
            with ProgressBar("demo", len(sids), enabled=progress) as bar:
                async with fake.client() as client:

                    def on_progress(progress: BulkProgress) -> None:
                        bar.update(progress.done, progress.failed)
                        limits.append(progress.limit)

                    async def consume() -> None:
                        # Said here, once SIGTERM and Ctrl-C stop the lookups cleanly.
                        echo(
                            f"2. Looking up {len(sids):,} SIDs ({missing:,} of them do not "
                            f"exist) with CallsClient.get_calls(concurrency={concurrency}) ..."
                        )
                        counts.started = time.monotonic()
                        results = client.get_calls(
                            sids, concurrency=concurrency, on_progress=on_progress
                        )
                        async for result in results:
                            if result.call is not None:
                                counts.found += 1
                            elif isinstance(result.error, NotFoundError):
                                counts.missing += 1
                            else:
                                counts.failed += 1
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
