"""Bulk lookups and listings as Dask collections (the ``dask`` extra).

Each partition is a shard (:class:`~signalwire_calls.SidShard` or
:class:`~signalwire_calls.WindowShard`) run by :func:`~signalwire_calls.run_shard`
on the worker: its own event loop and client, the credentials read from the
worker's environment (``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN``,
``SIGNALWIRE_SPACE_URL``), never carried in the task graph. Pass ``connect=`` to
build the client some other way: a picklable callable that reads the token where
it runs (a secret store) and carries none in its pickle.

Importing this module needs dask (``pip install 'signalwire-calls[dask]'``);
importing :mod:`signalwire_calls` never imports it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

try:
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd
except ImportError as err:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "signalwire_calls.dask needs dask: pip install 'signalwire-calls[dask]'"
    ) from err

from signalwire_calls import CallResult, CallsClient, FailedLookup
from signalwire_calls._checks import check_sid
from signalwire_calls._shards import (
    ShardOptions,
    SidShard,
    WindowShard,
    plan_window_shards,
    run_shard,
)
from signalwire_calls.arrow import CALL_SCHEMA, calls_to_table

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["frame_meta", "get_calls", "iter_calls_frame"]

_Connect = Callable[[ShardOptions], CallsClient]


def _fetch_partition(
    sids: Iterable[str | uuid.UUID], options: ShardOptions, connect: _Connect | None
) -> list[CallResult]:
    """Look up one partition's SIDs: one result per distinct SID, invalid ones included."""
    valid: dict[str, None] = {}
    invalid: dict[str, CallResult] = {}
    for sid in sids:
        try:
            valid.setdefault(check_sid(sid), None)
        except ValueError as err:
            invalid.setdefault(str(sid), FailedLookup(sid=str(sid), error=err))
    found = run_shard(SidShard(0, tuple(valid)), options, connect=connect) if valid else []
    return [*found, *invalid.values()]


def get_calls(
    sids: db.Bag | Sequence[str | uuid.UUID],
    *,
    npartitions: int | None = None,
    connect: _Connect | None = None,
    **options: Any,
) -> db.Bag:
    """Look up calls by SID on a Dask cluster: a bag of :class:`~signalwire_calls.CallResult`.

    Each partition is looked up by one task, concurrently within it, and gives one
    result per distinct SID of that partition (a SID that is not a UUID gives a
    result whose error is a ``ValueError``, at no request). To have each SID once in
    the whole bag, give each SID once (``bag.distinct()``, or a sequence: its
    duplicates are dropped before partitioning).

    Args:
        sids: A bag of SIDs, or a sequence of them.
        npartitions: For a sequence: how many partitions (default: about 2,000 SIDs each).
        connect: Builds each task's client from the
            :class:`~signalwire_calls.ShardOptions` (default:
            from the worker's environment). Must be picklable, without the token.
        **options: :class:`~signalwire_calls.ShardOptions` fields: ``base_url``,
            ``project_id``, ``timeout``, ``attempts``, ``concurrency``, ...

    Raises:
        TypeError: An option is unknown (there is no ``api_token`` option, on purpose).
        ValueError: ``npartitions`` is invalid.
    """
    shard_options = ShardOptions(**options)
    if not isinstance(sids, db.Bag):
        distinct = list(dict.fromkeys(_normal(sid) for sid in sids))
        if npartitions is None:
            npartitions = max(1, -(-len(distinct) // 2_000))
        if isinstance(npartitions, bool) or not isinstance(npartitions, int) or npartitions < 1:
            raise ValueError(f"npartitions must be a positive integer, got {npartitions!r}")
        bag = db.from_sequence(distinct, npartitions=min(npartitions, max(1, len(distinct))))
    elif npartitions is not None:
        raise ValueError("npartitions is for a sequence of SIDs: repartition the bag instead")
    else:
        bag = sids
    results: db.Bag = bag.map_partitions(_fetch_partition, shard_options, connect)
    return results


def _normal(sid: str | uuid.UUID) -> str | uuid.UUID:
    return sid.strip().lower() if isinstance(sid, str) else sid


# ----------------------------------------------------------------------- frames


def _types(arrow_type: pa.DataType) -> Any:
    """Map an Arrow type to its pandas dtype: Arrow-backed, enums as plain strings.

    Dictionary columns become ``string[pyarrow]`` rather than categoricals, whose
    categories would differ from partition to partition.
    """
    import pyarrow as pa  # noqa: PLC0415 - a dependency of dask.dataframe

    if pa.types.is_dictionary(arrow_type):
        return pd.ArrowDtype(arrow_type.value_type)
    return pd.ArrowDtype(arrow_type)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=_types)


def frame_meta() -> pd.DataFrame:
    """Return the empty frame :func:`iter_calls_frame`'s partitions look like (its dtypes)."""
    return _to_frame(CALL_SCHEMA.empty_table())


def _list_partition(
    shard: WindowShard, options: ShardOptions, connect: _Connect | None
) -> pd.DataFrame:
    return _to_frame(calls_to_table(run_shard(shard, options, connect=connect)))


def iter_calls_frame(
    *,
    started_after: datetime | date,
    started_before: datetime | date,
    windows: int,
    page_size: int = 1000,
    connect: _Connect | None = None,
    options: ShardOptions | None = None,
    **filters: Any,
) -> dd.DataFrame:
    """List a time range as a Dask DataFrame of calls: one partition per time window.

    The rows are those of ``CallsClient.iter_calls(started_after=...,
    started_before=...)`` for the same range, each call exactly once (see
    :func:`~signalwire_calls.plan_window_shards`), with the columns of
    :data:`signalwire_calls.arrow.CALL_SCHEMA` as Arrow-backed pandas dtypes (the
    enum columns as ``string[pyarrow]``). Partition ``i`` is window ``i``, oldest first.

    Args:
        started_after: The start of the range (aware datetime, or a date).
        started_before: The end of the range.
        windows: How many partitions (at most one per second of the range).
        page_size: Calls per page.
        connect: Builds each task's client (default: from the worker's environment).
        options: The workers' :class:`~signalwire_calls.ShardOptions`.
        **filters: ``status``, ``to``, ``from_``, ``parent_call_sid``,
            ``ended_after``, ``ended_before``.

    Raises:
        ValueError: The range, ``windows`` or a filter is invalid (before any task runs).
    """
    shards = plan_window_shards(
        started_after, started_before, windows, page_size=page_size, **filters
    )
    frame: dd.DataFrame = dd.from_map(
        _list_partition,
        shards,
        options=options or ShardOptions(),
        connect=connect,
        meta=frame_meta(),
        divisions=[None] * (len(shards) + 1),
        label="signalwire-list-calls",
        enforce_metadata=False,
    )
    return frame
