"""Bounded concurrent fan-out, generic over key and value; knows no HTTP.

:func:`fan_out` runs ``work(key)`` once for every distinct key of a stream that may
be huge or asynchronous, with a small pool of worker tasks (never one task per
key), and yields an :class:`Outcome` per distinct key as the work completes.

The number of calls in flight is capped by an :class:`AdaptiveLimit` (AIMD): it
halves when the service says "too many requests" and creeps back up after a run of
successes, so a bulk job slows itself down instead of burning its retries.

Memory is bounded by ``window`` (keys read from the input but not yet yielded) plus
the de-duplication set, which keeps every distinct key it has seen: about 110 bytes
per 36-character SID string, so some 1.1 GB for ten million SIDs. Pass
``dedupe=False`` for input known to be unique.

The job :func:`fan_out` starts is a ``_Job`` (its tasks, :mod:`signalwire_calls._bulk_job`)
over a ``_JobState`` (what they share, :mod:`signalwire_calls._bulk_state`, where
:class:`BulkProgress` and :func:`cancel_and_wait` are defined).
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, Generic, NamedTuple, TypeVar, overload

from signalwire_calls._bulk_job import _Job
from signalwire_calls._bulk_state import BulkProgress, cancel_and_wait
from signalwire_calls._errors import RateLimitedError
from signalwire_calls._limit import AdaptiveLimit, check_positive, signal_throttle

__all__ = [
    "AdaptiveLimit",
    "BulkProgress",
    "Outcome",
    "cancel_and_wait",
    "fan_out",
    "signal_throttle",
]

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


class Outcome(NamedTuple, Generic[K, V]):
    """The result for one distinct key: ``value`` or ``error``, never both."""

    key: K
    value: V | None
    error: Exception | None


@overload
def fan_out(
    keys: Iterable[K] | AsyncIterable[K],
    work: Callable[[K], Awaitable[V]],
    *,
    concurrency: int | AdaptiveLimit,
    ordered: bool = ...,
    window: int | None = ...,
    validate: Callable[[K], object] | None = ...,
    is_throttle: Callable[[Exception], bool] | None = ...,
    max_throttle_retries: int = ...,
    on_progress: Callable[[BulkProgress], None] | None = ...,
    dedupe: bool = ...,
    throttle_hook: contextvars.ContextVar[Callable[[], None] | None] | None = ...,
    wrap: None = ...,
) -> AsyncGenerator[Outcome[K, V], None]: ...


@overload
def fan_out(
    keys: Iterable[K] | AsyncIterable[K],
    work: Callable[[K], Awaitable[V]],
    *,
    concurrency: int | AdaptiveLimit,
    ordered: bool = ...,
    window: int | None = ...,
    validate: Callable[[K], object] | None = ...,
    is_throttle: Callable[[Exception], bool] | None = ...,
    max_throttle_retries: int = ...,
    on_progress: Callable[[BulkProgress], None] | None = ...,
    dedupe: bool = ...,
    throttle_hook: contextvars.ContextVar[Callable[[], None] | None] | None = ...,
    wrap: Callable[[K, V | None, Exception | None], R],
) -> AsyncGenerator[R, None]: ...


def fan_out(
    keys: Iterable[K] | AsyncIterable[K],
    work: Callable[[K], Awaitable[V]],
    *,
    concurrency: int | AdaptiveLimit,
    ordered: bool = False,
    window: int | None = None,
    validate: Callable[[K], object] | None = None,
    is_throttle: Callable[[Exception], bool] | None = None,
    max_throttle_retries: int = 3,
    on_progress: Callable[[BulkProgress], None] | None = None,
    dedupe: bool = True,
    throttle_hook: contextvars.ContextVar[Callable[[], None] | None] | None = None,
    wrap: Callable[[K, V | None, Exception | None], Any] | None = None,
) -> AsyncGenerator[Any, None]:
    """Run ``work`` for each distinct key with bounded, adaptive concurrency.

    The input is read lazily: at most ``window`` distinct keys are ever between
    being read and being yielded, which bounds both the read-ahead and, with
    ``ordered=True``, the reorder buffer (a slow head-of-line key stalls intake
    instead of letting results pile up). An exception from ``work`` becomes the
    key's outcome; ``asyncio.CancelledError`` always propagates. A key whose work
    raised a throttle error is tried again under the (now smaller) limit, at most
    ``max_throttle_retries`` times, then reported with that error.

    Closing the iterator (``aclose()``, ``break`` followed by garbage collection,
    or cancelling the consumer) cancels and awaits every worker, and closes the
    input if it is an async generator. Wrap it in :func:`contextlib.aclosing` for
    cleanup that does not wait for garbage collection.

    Args:
        keys: Hashable keys; an iterable or async iterable, possibly endless.
        work: The call to make for a key.
        concurrency: The largest number of calls in flight, or an
            :class:`AdaptiveLimit` to use (and inspect) instead of a fresh one.
        ordered: Yield outcomes in input order rather than as they complete.
        window: Keys allowed between intake and yield (default: 4 x concurrency).
        validate: Raises (typically ``ValueError``) for a key that must not be worked
            on; the error becomes that key's outcome and costs no call. Its return
            value is ignored, so a checker such as ``check_sid`` fits as it is.
        is_throttle: Whether an error from ``work`` means "slow down" (default: a
            :class:`~signalwire_calls.RateLimitedError`).
        max_throttle_retries: Extra attempts for a throttled key.
        on_progress: Called synchronously with a :class:`BulkProgress` at the start,
            after each outcome, duplicate and throttle retry. If it raises, the error
            is logged once and the hook is not called again: a broken progress bar
            must not break the job.
        dedupe: Skip keys seen before (see the module docstring for the memory cost).
        throttle_hook: A context variable that code inside ``work`` (the HTTP retry
            middleware) calls on every 429 it sees; each worker sets it, once, to a
            function that reports the throttle to this job's limit.
        wrap: Builds what is yielded for a key from ``(key, value, error)``
            (default: :class:`Outcome`), so a caller that wants its own result type
            needs no second generator to convert outcomes.

    Returns:
        An async generator of :class:`Outcome` (or of what ``wrap`` returns), one
        per distinct key.

    Raises:
        TypeError: ``keys`` is a single string.
        ValueError: A numeric option is out of range.
    """
    if isinstance(keys, str | bytes):
        raise TypeError("keys must be an iterable of keys, not a single string")
    limit = concurrency if isinstance(concurrency, AdaptiveLimit) else AdaptiveLimit(concurrency)
    if window is None:
        window = 4 * limit.maximum
    check_positive("window", window)
    if isinstance(max_throttle_retries, bool) or max_throttle_retries < 0:
        raise ValueError(f"max_throttle_retries must be >= 0, got {max_throttle_retries!r}")
    job = _Job(
        keys,
        work,
        limit,
        ordered=ordered,
        window=window,
        validate=validate,
        is_throttle=is_throttle or _is_rate_limited,
        max_throttle_retries=max_throttle_retries,
        on_progress=on_progress,
        dedupe=dedupe,
        throttle_hook=throttle_hook,
        wrap=wrap or Outcome,
    )
    return job.run()


def _is_rate_limited(error: Exception) -> bool:
    return isinstance(error, RateLimitedError)
