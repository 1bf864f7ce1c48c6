"""``signalwire-calls serve`` (the local emulator) and ``signalwire-calls demo``."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import click

from signalwire_calls import BulkProgress
from signalwire_calls._cli._common import (
    EXIT_INTERRUPTED,
    EXIT_LOOKUPS,
    EXIT_OK,
    run_main,
    say,
    stop_on_signals,
    until_signal,
)
from signalwire_calls._cli._fetch import describe
from signalwire_calls._cli._output import Counts, ProgressBar
from signalwire_calls.testing import FakeSignalWire, FaultProfile

__all__ = ["demo", "serve"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
@click.option(
    "--sids-file",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the SIDs it serves here, one per line, and one that does not exist "
    "(the docs' sids.txt).",
)
def serve(  # noqa: PLR0917 - one parameter per flag
    host: str, port: int, calls: int, seed: int, sids_file: Path | None, faults: FaultProfile
) -> None:
    """Run the local SignalWire emulator until Ctrl-C.

    Besides the generated calls it serves the call the docs retrieve
    (7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21), so every example runs against it.
    """
    everywhere = host in {"", "0.0.0.0", "::"}  # noqa: S104 - checked to warn about it
    if not _is_loopback(host):
        say(
            f"warning: listening on {host or 'every interface'}: anyone who can reach this "
            "machine can read the emulator's calls with the token printed below"
        )

    def ready(fake: FakeSignalWire) -> None:
        lines = [
            (
                f"signalwire-calls emulator: {len(fake.call_sids):,} calls (seed {seed}"
                ", the docs' example call included), "
                f"faults: {faults.describe()}"
            ),
            f"export SIGNALWIRE_BASE_URL={fake.base_url}",
            f"export SIGNALWIRE_PROJECT_ID={fake.project_id}",
            f"export SIGNALWIRE_API_TOKEN={fake.api_token}",
        ]
        if everywhere:
            lines.insert(
                2,
                f"# from other machines: http://<this machine's address>:{fake.port}"
                + fake.base_url.removeprefix(fake.origin),
            )
        if sids_file is not None:
            lines.append(f"# {len(fake.call_sids) + 1:,} SIDs written to {sids_file}")
        lines.append("(an emulator-only token, not a real credential) Press Ctrl-C to stop.")
        click.echo("\n".join(lines))
        sys.stdout.flush()

    async def main() -> None:
        from signalwire_calls.testing import serve as run_emulator  # noqa: PLC0415

        stop = asyncio.Event()
        stop_on_signals(stop.set)
        await run_emulator(
            port, calls, seed, faults, host=host, sids_file=sids_file, ready=ready, stop=stop
        )

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
                        limits.append(progress.limit)

                    async def consume() -> None:
                        # Said here, once SIGTERM and Ctrl-C stop the lookups cleanly (the
                        # bar prints it above itself).
                        bar.echo(
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
                                bar.say(f"failed {result.sid}: {describe(result.error)}")
                            # Its errors are the summary's "failed" (a 404 is a result).
                            done = counts.found + counts.missing + counts.failed
                            bar.update(done, counts.failed)

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
