"""``fetch --processes N`` and ``list --processes N``: shards run by N worker processes.

One event loop uses one core; these commands use N. The parent plans the shards
(:func:`~signalwire_calls.plan_sid_shards`, :func:`~signalwire_calls.plan_window_shards`),
queues them, and starts N workers (``spawn``: a fresh interpreter each, no inherited
event loop or connection). Each worker takes shards off the queue and runs them with
its own client, streaming results back in batches; the parent alone writes the
output and draws the progress bar, so there is still one output (for ``fetch``, the
same resumable file: a batch of complete lines goes out in one ``write()``) and one bar.

Credentials: a shard carries none. The workers get the non-secret settings (base URL,
project id, timeouts) in :class:`~signalwire_calls.ShardOptions`, and read the token
from their environment, inherited from the parent's (a ``--api-token`` flag is put
there only for the moment the workers start).

Stopping: workers ignore SIGINT (a Ctrl-C reaches the whole process group; the
parent decides). On SIGINT or SIGTERM the parent sets a shared event; each worker
cancels its lookups, sends what has arrived and exits, and the parent writes it all
before its summary. A worker whose parent is gone (``kill -9``) stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import attrs
import click

from signalwire_calls._cli._common import EXIT_LOOKUPS, CliError
from signalwire_calls._cli._fetch import describe
from signalwire_calls._cli._output import Counts, ProgressBar, dumps_call
from signalwire_calls._cli._parquet import ParquetParts
from signalwire_calls._cli._resumable import ResumableOutput
from signalwire_calls._client import CallsClient
from signalwire_calls._errors import AuthenticationError, PermissionDeniedError
from signalwire_calls._listing import MAX_PAGE_SIZE
from signalwire_calls._models import Call, CallResult
from signalwire_calls._shards import (
    DEFAULT_SHARD_SIZE,
    ShardOptions,
    SidShard,
    WindowShard,
    connect_from_env,
    iter_shard,
    plan_sid_shards,
    plan_window_shards,
)

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

__all__ = [
    "Item",
    "ProcessPool",
    "fetch_in_processes",
    "list_in_processes",
    "shard_options",
    "worker_token",
]

#: Results a worker sends at once, and how long it holds a batch at most (seconds).
_BATCH: Final = 256
_BATCH_SECONDS: Final = 0.05
#: How often a worker checks the stop event and that its parent is alive (seconds).
_WATCH_SECONDS: Final = 0.05
#: How long the parent waits for a stopped worker before terminating it (seconds).
_JOIN_SECONDS: Final = 10.0
#: The ``list`` flags that are List Calls filters, passed to each window shard.
_LIST_FILTERS: Final = ("status", "to", "from_", "parent_call_sid", "ended_after", "ended_before")
#: A window is paged one page at a time: one request in flight per shard.
_LIST_CONCURRENCY: Final = 1

#: One result as a worker sends it: ``(sid, kind, payload)``. ``kind`` is ``found``
#: or ``call`` (payload: a JSON line, or the :class:`Call` when ``lines`` is off),
#: ``missing`` or ``failed`` (payload: the reason).
Item = tuple[str, str, bytes | Call | str]


def shard_options(
    conn: dict[str, Any], base_url: str, project_id: str, concurrency: int | None
) -> ShardOptions:
    """Return the workers' client settings from the command's flags (no secret among them)."""
    return ShardOptions(
        base_url=base_url,
        project_id=project_id,
        timeout=conn.get("timeout", 30.0),
        attempts=conn.get("retries", 4) + 1,
        concurrency=concurrency,
        trust_env=not conn.get("no_proxy_env", False),
    )


def worker_token(conn: dict[str, Any]) -> str | None:
    """Return the ``--api-token`` flag's value, which the workers' environment must carry."""
    token = conn.get("api_token")
    return token if isinstance(token, str) and token else None


@attrs.frozen
class _Setup:
    options: ShardOptions
    lines: bool


# ---------------------------------------------------------------------- worker


def _worker(  # noqa: PLR0917 - a Process target takes its arguments positionally
    number: int, setup: _Setup, tasks: Any, results: Any, stop: Event, parent: int
) -> None:
    """A worker process: run shards off ``tasks`` until told to stop or none is left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    gc.freeze()  # as the command does: the imports live as long as the worker
    try:
        asyncio.run(_work(setup, tasks, results, stop, parent))
    except (AuthenticationError, PermissionDeniedError) as err:
        results.put(("fatal", str(err).splitlines()[0], True))
    except Exception as err:  # noqa: BLE001 - reported to the parent as one line
        results.put(("fatal", str(err).splitlines()[0] if str(err) else type(err).__name__, False))
    finally:
        results.put(("exit", number))
        results.close()
        if os.getppid() == parent:
            results.join_thread()  # everything sent has reached the pipe before exiting
        else:  # nobody reads the pipe any more: do not wait for it to drain
            results.cancel_join_thread()


async def _work(setup: _Setup, tasks: Any, results: Any, stop: Event, parent: int) -> None:
    main = asyncio.current_task()
    assert main is not None  # noqa: S101 - asyncio.run runs a task
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def watch() -> None:
        # A multiprocessing Event and the parent's pid cannot be awaited: poll them.
        while not stop.is_set() and os.getppid() == parent:  # noqa: ASYNC110
            await asyncio.sleep(_WATCH_SECONDS)
        main.cancel()

    watcher = asyncio.create_task(watch())
    batch = _Batch(results, lines=setup.lines)
    try:
        async with connect_from_env(setup.options) as client:
            while (shard := await asyncio.to_thread(tasks.get)) is not None:
                items = iter_shard(shard, client, concurrency=setup.options.concurrency)
                async with contextlib.aclosing(items):  # type: ignore[type-var]
                    async for item in items:
                        batch.add(item)
                batch.flush()
                results.put(("shard", shard.index))
    except asyncio.CancelledError:
        if not stop.is_set() and os.getppid() == parent:
            raise
    finally:
        batch.flush()
        watcher.cancel()


class _Batch:
    """Results on their way to the parent: sent every :data:`_BATCH`, or after a moment."""

    def __init__(self, results: Any, *, lines: bool) -> None:
        self._results = results
        self._lines = lines
        self._items: list[Item] = []
        self._since = 0.0

    def add(self, item: CallResult | Call) -> None:
        if isinstance(item, Call):
            self._items.append((item.sid, "call", dumps_call(item) if self._lines else item))
        elif item.call is not None:
            call = item.call
            self._items.append((item.sid, "found", dumps_call(call) if self._lines else call))
        else:
            if isinstance(item.error, AuthenticationError):
                raise item.error  # it would fail every SID: stop the job
            outcome = item.outcome
            self._items.append((item.sid, outcome, describe(item.error, outcome)))
        now = time.monotonic()
        if len(self._items) == 1:
            self._since = now
        if len(self._items) >= _BATCH or now - self._since >= _BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._items:
            self._results.put(("items", self._items))
            self._items = []


# ---------------------------------------------------------------------- parent


@contextlib.contextmanager
def _environment(token: str | None) -> Iterator[None]:
    """Put the token in the environment the workers inherit, only while they start."""
    if token is None:
        yield
        return
    saved = os.environ.get("SIGNALWIRE_API_TOKEN")
    os.environ["SIGNALWIRE_API_TOKEN"] = token
    try:
        yield
    finally:
        if saved is None:
            del os.environ["SIGNALWIRE_API_TOKEN"]
        else:
            os.environ["SIGNALWIRE_API_TOKEN"] = saved


class ProcessPool:
    """N worker processes running shards; :meth:`run` hands their results to the caller.

    Args:
        shards: The work, in the order it is handed out.
        processes: Worker processes (at most one per shard are started).
        options: The workers' client settings.
        lines: Send found calls as JSON lines (cheap for the parent to write) rather
            than as :class:`Call` objects.
        token: A token to put in the workers' environment (the ``--api-token`` flag).
    """

    def __init__(
        self,
        shards: Sequence[SidShard | WindowShard],
        processes: int,
        options: ShardOptions,
        *,
        lines: bool,
        token: str | None = None,
    ) -> None:
        self._shards = list(shards)
        self._count = max(1, min(processes, len(self._shards)))
        self._setup = _Setup(options, lines)
        self._token = token
        self.interrupted = False
        self.shards_done = 0
        self._fatal: tuple[str, bool] | None = None
        self._accepting = True

    def run(self, on_items: Callable[[list[Item]], bool]) -> bool:
        """Run every shard; call ``on_items`` with each batch. Return ``False`` if interrupted.

        ``on_items`` returns ``False`` to stop the job early (``list --limit``).

        Raises:
            CliError: A worker failed (refused credentials: exit 2; else exit 1).
        """
        if not self._shards:
            return True
        context = multiprocessing.get_context("spawn")
        tasks, results, stop = context.Queue(), context.Queue(), context.Event()
        for shard in self._shards:
            tasks.put(shard)
        for _ in range(self._count):
            tasks.put(None)
        workers = [
            context.Process(
                target=_worker,
                args=(number, self._setup, tasks, results, stop, os.getpid()),
                name=f"signalwire-calls-worker-{number}",
                daemon=True,
            )
            for number in range(self._count)
        ]

        def on_signal(_signum: int, _frame: object) -> None:
            self.interrupted = True
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            with _environment(self._token):
                for worker in workers:
                    worker.start()
            self._drain(workers, results, stop, on_items)
        finally:
            stop.set()
            _reap(workers)
            tasks.cancel_join_thread()
            tasks.close()
            results.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self._fatal is not None:
            message, auth = self._fatal
            if auth:
                raise CliError(
                    f"{message} (check SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN, "
                    "and that the token has the Voice scope)"
                )
            raise CliError(message, EXIT_LOOKUPS)
        return not self.interrupted

    def _drain(
        self,
        workers: list[Any],
        results: Any,
        stop: Event,
        on_items: Callable[[list[Item]], bool],
    ) -> None:
        exited: set[int] = set()
        self._accepting = True
        while len(exited) < len(workers):
            try:
                message = results.get(timeout=0.1)
            except queue.Empty:
                for number, worker in enumerate(workers):
                    if number not in exited and not worker.is_alive():
                        exited.add(number)  # died without a word: killed, out of memory
                        if worker.exitcode and not stop.is_set():
                            self._fail(f"worker process died (exit code {worker.exitcode})")
                            stop.set()
                continue
            self._take(message, exited, stop, on_items)
        # Every worker has exited, and what each sent reached the pipe before it did
        # (join_thread): read the rest, so that nothing that arrived is lost.
        with contextlib.suppress(queue.Empty):
            while True:
                self._take(results.get(timeout=0.1), exited, stop, on_items)

    def _take(
        self,
        message: tuple[Any, ...],
        exited: set[int],
        stop: Event,
        on_items: Callable[[list[Item]], bool],
    ) -> None:
        kind = message[0]
        if kind == "items" and self._accepting:
            self._accepting = on_items(message[1])
            if not self._accepting:
                stop.set()
        elif kind == "shard":
            self.shards_done += 1
        elif kind == "fatal":
            self._fail(message[1], auth=message[2])
            stop.set()
        elif kind == "exit":
            exited.add(message[1])

    def _fail(self, message: str, *, auth: bool = False) -> None:
        """Keep the first failure (a refused credential wins: it explains the others)."""
        if self._fatal is None or (auth and not self._fatal[1]):
            self._fatal = (message, auth)


def _reap(workers: list[Any]) -> None:
    """Wait for stopped workers; terminate one that does not exit in time."""
    for worker in workers:
        if worker.pid is not None:
            worker.join(_JOIN_SECONDS)
            if worker.is_alive():
                worker.terminate()
                worker.join(_JOIN_SECONDS)


# -------------------------------------------------------------- the two commands


def fetch_in_processes(
    sids: list[str],
    output: ResumableOutput | ParquetParts,
    *,
    processes: int,
    options: ShardOptions,
    token: str | None,
    counts: Counts,
    bar: ProgressBar,
    report: Callable[[str, str, str], None],
) -> bool:
    """``fetch --processes``: look up ``sids`` in shards; return ``False`` if interrupted.

    Raises:
        CliError: A worker failed, or died: some SIDs were not looked up (run again).
    """
    total = len(sids)
    # At least four shards a process, so that one slow shard does not idle the others.
    size = max(1, min(DEFAULT_SHARD_SIZE, -(-total // (processes * 4))))
    lines = isinstance(output, ResumableOutput)

    def on_items(items: list[Item]) -> bool:
        found: list[str] = []
        data: list[bytes] = []
        for sid, kind, payload in items:
            if kind == "found":
                counts.found += 1
                if isinstance(payload, bytes):
                    found.append(sid)
                    data.append(payload)
                elif isinstance(payload, Call):
                    output.write(payload)
            else:
                if kind == "missing":
                    counts.missing += 1
                else:
                    counts.failed += 1
                report(sid, kind, str(payload))
        if data and isinstance(output, ResumableOutput):
            output.write_lines(found, b"".join(data))
        bar.update(counts.found + counts.missing + counts.failed, counts.failed, total)
        return True

    pool = ProcessPool(
        plan_sid_shards(sids, size=size), processes, options, lines=lines, token=token
    )
    finished = pool.run(on_items)
    left = total - (counts.found + counts.missing + counts.failed)
    if finished and left:
        raise CliError(
            f"{left:,} SIDs were not looked up: run the same command again", EXIT_LOOKUPS
        )
    return finished


def list_in_processes(
    writer: Any, client: CallsClient, *, limit: int | None, counts: Counts, bar: ProgressBar
) -> bool:
    """``list --windows W --processes N``: list windows in N processes; ``False`` if interrupted.

    The filters are the ``list`` command's flags, read from click's context; ``limit``
    is the number of calls the command shows (its default, ``--limit`` or none for ``--all``).
    """
    params = click.get_current_context().params
    windows: int = params["windows"] or 1
    processes: int = params["processes"]
    if windows < 2:  # noqa: PLR2004 - one window is one process
        raise CliError("--processes needs --windows N (N > 1): each process lists windows")
    shards = plan_window_shards(
        params["started_after"],
        params["started_before"] or datetime.now(UTC),
        windows,
        page_size=params["page_size"] or MAX_PAGE_SIZE,
        **{name: params[name] for name in _LIST_FILTERS},
    )
    options = shard_options(params, client.base_url, client.project_id, _LIST_CONCURRENCY)
    token = worker_token(params)

    def on_items(items: list[Item]) -> bool:
        for _, _, call in items:
            writer.write(call)
            counts.found += 1
            if counts.found == limit:
                break
        bar.update(counts.found, 0)
        return counts.found != limit

    pool = ProcessPool(shards, processes, options, lines=False, token=token)
    return pool.run(on_items)
