"""Shards: small, picklable pieces of bulk work that any engine can run anywhere.

A shard says *what* to fetch, never *how to authenticate*: a :class:`SidShard` is a
chunk of SIDs, a :class:`WindowShard` one time window of List Calls. Neither holds
a credential, so a shard can be pickled, shipped to a process, a Dask or Ray worker
or a Spark executor, logged and shown on a dashboard. :func:`run_shard` runs one
where it lands: its own event loop, its own :class:`~signalwire_calls.CallsClient`,
credentials read there (``SIGNALWIRE_*`` in the worker's environment, or a
``connect`` callable of yours). Running a shard has no side effect, so running it
again (an engine's retry) returns the same calls.

Exactly once across shards:

- :func:`plan_sid_shards` drops duplicate SIDs (lower-cased) before chunking, so
  each distinct SID is in exactly one shard.
- :func:`plan_window_shards` splits the range with the very windows of
  ``CallsClient.iter_calls(windows=N)``. Each inner window is listed one second
  early (the API's ``StartTime>`` may be strict or inclusive: it is undocumented)
  and keeps only the calls whose ``start_time`` is inside it, so a call on an edge
  belongs to exactly one window; the range's own edges are left to the API, as a
  single listing of the range would be. Each shard decides alone: no shared state.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any, Final, overload

import attrs

from signalwire_calls._checks import check_sid
from signalwire_calls._client import CallsClient
from signalwire_calls._listing import MAX_PAGE_SIZE, split_windows
from signalwire_calls._models import Call, CallResult
from signalwire_calls._retry import RetryPolicy

__all__ = [
    "ShardOptions",
    "SidShard",
    "WindowShard",
    "connect_from_env",
    "iter_shard",
    "plan_sid_shards",
    "plan_window_shards",
    "run_shard",
]

#: SIDs per shard unless told: big enough to keep a client's 64 lookups busy for a
#: while, small enough that a lost worker costs little.
DEFAULT_SHARD_SIZE: Final = 2_000
#: The List Calls filters a window shard may carry (``iter_calls``' own names).
_FILTERS: Final = frozenset(
    {"status", "to", "from_", "parent_call_sid", "ended_after", "ended_before"}
)
_SECOND: Final = timedelta(seconds=1)


def _positive(name: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, _attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")

    return check


@attrs.frozen
class ShardOptions:
    """How a worker builds its client: everything but the credentials.

    The worker reads ``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN`` and
    ``SIGNALWIRE_SPACE_URL``/``SIGNALWIRE_BASE_URL`` from its own environment
    (:meth:`CallsClient.from_env`); ``base_url``, ``space_url`` and ``project_id``
    given here win over those (none of them is a secret). There is no field for
    the token, on purpose: it cannot end up in a pickle or a task graph.

    Args:
        base_url: The API root, overriding the worker's environment.
        space_url: Your space, overriding the worker's environment.
        project_id: The Project ID, overriding the worker's environment.
        timeout: Seconds per attempt.
        attempts: Attempts per request (``RetryPolicy(attempts=...)``).
        concurrency: Lookups in flight in each shard (``None``: each shard's job tunes
            its own, as :meth:`~signalwire_calls.CallsClient.iter_call_results` does).
        trust_env: Follow ``HTTPS_PROXY``/``NO_PROXY`` of the worker's environment.
    """

    base_url: str | None = None
    space_url: str | None = None
    project_id: str | None = None
    timeout: float | None = attrs.field(default=30.0, validator=_positive("timeout"))
    attempts: int = attrs.field(default=5, validator=_positive("attempts"))
    concurrency: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive("concurrency"))
    )
    trust_env: bool = False


def connect_from_env(options: ShardOptions) -> CallsClient:
    """Build a worker's client from its environment, with ``options`` over it."""
    return CallsClient.from_env(
        base_url=options.base_url,
        space_url=options.space_url,
        project_id=options.project_id,
        timeout=options.timeout,
        retry=RetryPolicy(attempts=options.attempts),
        trust_env=options.trust_env,
    )


@attrs.frozen
class SidShard:
    """A chunk of distinct, valid, lower-cased SIDs to look up (:func:`plan_sid_shards`).

    Args:
        index: Its place in the plan, from 0 (names its output, orders its results).
        sids: The SIDs.
    """

    index: int
    sids: tuple[str, ...]

    def __repr__(self) -> str:
        return f"SidShard(index={self.index}, sids=<{len(self.sids)} SIDs>)"


def _filters(value: Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    pairs = tuple(sorted((str(k), v) for k, v in dict(value).items() if v is not None))
    unknown = sorted(k for k, _ in pairs if k not in _FILTERS)
    if unknown:
        raise ValueError(
            f"unknown List Calls filter(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(_FILTERS))}"
        )
    return pairs


@attrs.frozen
class WindowShard:
    """One time window of a List Calls range (:func:`plan_window_shards`).

    It lists ``[started_after, started_before)``; an inner edge (``first`` or
    ``last`` false) is listed a second early and filtered on ``start_time``, so
    each call of the range is in exactly one window (see the module doc).

    Args:
        index: Its place in the plan, from 0 (the oldest window).
        started_after: The window's start (aware, UTC, whole seconds).
        started_before: The window's end.
        first: Whether the window starts the range (its start is the API's to judge).
        last: Whether the window ends the range.
        filters: Other ``iter_calls`` filters, as sorted ``(name, value)`` pairs.
        page_size: Calls per page.
    """

    index: int
    started_after: datetime
    started_before: datetime
    first: bool = True
    last: bool = True
    filters: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=_filters)
    page_size: int = MAX_PAGE_SIZE

    def keeps(self, call: Call) -> bool:
        """Tell whether ``call`` belongs to this window (the exactly-once rule)."""
        moment = call.start_time
        if moment is None:  # listed by a time filter without a start time: the first keeps it
            return self.first
        if not self.first and moment < self.started_after:
            return False
        return self.last or moment < self.started_before


def plan_sid_shards(
    sids: Iterable[str | uuid.UUID], *, size: int = DEFAULT_SHARD_SIZE
) -> list[SidShard]:
    """Split SIDs into shards of at most ``size``, each distinct SID in exactly one.

    SIDs are checked and lower-cased first; duplicates are dropped.

    Raises:
        ValueError: ``size`` is not a positive integer, or a SID is not a UUID
            (the message says which).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    distinct = list(dict.fromkeys(check_sid(sid) for sid in sids))
    return [
        SidShard(index, tuple(distinct[start : start + size]))
        for index, start in enumerate(range(0, len(distinct), size))
    ]


def plan_window_shards(
    started_after: datetime | date,
    started_before: datetime | date,
    windows: int,
    *,
    page_size: int = MAX_PAGE_SIZE,
    **filters: Any,
) -> list[WindowShard]:
    """Split ``[started_after, started_before)`` into ``windows`` window shards.

    The windows are those of ``CallsClient.iter_calls(windows=...)``: whole seconds,
    contiguous, at most one per second of the range.

    Args:
        started_after: The start of the range (aware datetime, or a date: UTC midnight).
        started_before: The end of the range.
        windows: How many shards.
        page_size: Calls per page, 1 to 1000.
        **filters: ``status``, ``to``, ``from_``, ``parent_call_sid``,
            ``ended_after``, ``ended_before``, as for ``iter_calls``.

    Raises:
        ValueError: A naive datetime, an empty range, a bad count or an unknown filter.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}, got {page_size}")
    spans = split_windows(started_after, started_before, windows)
    checked = _filters(filters.items())
    return [
        WindowShard(
            index,
            start,
            end,
            first=index == 0,
            last=index == len(spans) - 1,
            filters=checked,
            page_size=page_size,
        )
        for index, (start, end) in enumerate(spans)
    ]


# ---------------------------------------------------------------------- running


@overload
def iter_shard(
    shard: SidShard, client: CallsClient, *, concurrency: int | None = ...
) -> AsyncIterator[CallResult]: ...
@overload
def iter_shard(
    shard: WindowShard, client: CallsClient, *, concurrency: int | None = ...
) -> AsyncIterator[Call]: ...
def iter_shard(
    shard: SidShard | WindowShard, client: CallsClient, *, concurrency: int | None = None
) -> AsyncIterator[CallResult] | AsyncIterator[Call]:
    """Run ``shard`` with an open ``client``, yielding its results as they arrive.

    A :class:`SidShard` yields one :class:`CallResult` per SID; a :class:`WindowShard`
    the calls of its window, each call of the range in exactly one window.
    """
    if isinstance(shard, SidShard):
        return client.iter_call_results(shard.sids, concurrency=concurrency)
    if isinstance(shard, WindowShard):
        return _list_window(shard, client)
    raise TypeError(f"expected a SidShard or a WindowShard, got {type(shard).__name__}")


async def _list_window(shard: WindowShard, client: CallsClient) -> AsyncIterator[Call]:
    calls = client.iter_calls(
        started_after=shard.started_after if shard.first else shard.started_after - _SECOND,
        started_before=shard.started_before,
        page_size=shard.page_size,
        **dict(shard.filters),
    )
    async for call in calls:
        if shard.keeps(call):
            yield call


@overload
def run_shard(
    shard: SidShard,
    options: ShardOptions | None = ...,
    *,
    connect: Callable[[ShardOptions], CallsClient] | None = ...,
) -> list[CallResult]: ...
@overload
def run_shard(
    shard: WindowShard,
    options: ShardOptions | None = ...,
    *,
    connect: Callable[[ShardOptions], CallsClient] | None = ...,
) -> list[Call]: ...
def run_shard(
    shard: SidShard | WindowShard,
    options: ShardOptions | None = None,
    *,
    connect: Callable[[ShardOptions], CallsClient] | None = None,
) -> list[CallResult] | list[Call]:
    """Run one shard to completion in its own event loop and client; return its results.

    Call it in a worker (a process, a Dask, Ray or Spark task), not inside a running
    event loop. The client is built there by ``connect(options)``, by default
    ``CallsClient.from_env()`` with ``options`` over it: the credentials come from
    the worker's environment.
    A ``connect`` of yours must be picklable and must not carry the token in its
    pickle (read it from a secret store when called).

    Returns:
        For a :class:`SidShard`, one :class:`CallResult` per SID, in the shard's
        order; for a :class:`WindowShard`, its calls, newest first.

    Raises:
        ConfigError: The worker's environment lacks credentials.
        SignalWireError: Listing a window failed (a lookup's failure is a result).
    """
    opts = options or ShardOptions()
    make = connect or connect_from_env
    if not isinstance(shard, SidShard | WindowShard):
        raise TypeError(f"expected a SidShard or a WindowShard, got {type(shard).__name__}")

    async def main() -> list[Any]:
        async with make(opts) as client:
            return [item async for item in iter_shard(shard, client, concurrency=opts.concurrency)]

    results = asyncio.run(main())
    if isinstance(shard, SidShard):
        order = {sid: n for n, sid in enumerate(shard.sids)}
        results.sort(key=lambda result: order.get(result.sid, len(order)))
    return results
