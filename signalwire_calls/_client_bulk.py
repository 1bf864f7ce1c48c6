"""``CallsClient.get_calls`` and ``fetch_calls``: many lookups through one fan-out job.

The concurrency, de-duplication and throttling are :mod:`signalwire_calls._bulk`'s;
this mixin only points it at the client's lookup.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING

from signalwire_calls._bulk import AdaptiveLimit, BulkProgress, fan_out
from signalwire_calls._client_requests import _Requests, check_sid
from signalwire_calls._errors import NotFoundError
from signalwire_calls._models import BulkResult, CallResult, build_call_result
from signalwire_calls._retry import throttle_listener

if TYPE_CHECKING:
    from signalwire_calls._models import Call

log = logging.getLogger("signalwire_calls")

#: Successes that win back one slot of a bulk job's concurrency after a 429.
_GROWTH_STEP = 8


class _Bulk(_Requests):
    """The bulk lookups of :class:`~signalwire_calls.CallsClient` (a base class)."""

    def get_calls(
        self,
        sids: Iterable[str] | AsyncIterable[str],
        *,
        concurrency: int = 64,
        ordered: bool = False,
        on_progress: Callable[[BulkProgress], None] | None = None,
    ) -> AsyncIterator[CallResult]:
        """Look up many calls concurrently; yield one :class:`CallResult` per distinct SID.

        The input is streamed (it may be a huge iterable or an async iterable) and
        each distinct SID is fetched once. At most ``concurrency`` requests are in
        flight at any time (never more than ``max_connections``); when the service
        answers 429 the job halves its concurrency and grows back after a run of
        successes, and a SID that was only rate-limited is tried again rather than
        reported. A failing SID never stops the others: its result carries the
        error (:class:`NotFoundError` for a missing call, ``ValueError`` for a SID
        that is not a UUID, which costs no request).

        Breaking out of the loop, or cancelling the task that runs it, cancels
        the requests in flight and leaves no task behind.

        Args:
            sids: The SIDs to look up.
            concurrency: The most requests in flight at once.
            ordered: Yield results in input order (with a bounded reorder buffer)
                instead of as they complete.
            on_progress: Called with a :class:`BulkProgress` after every result;
                an exception in it is logged and the hook dropped.

        Returns:
            An async iterator of one result per distinct SID. Use it with
            ``contextlib.aclosing()`` to have everything cancelled the moment
            you leave the loop early (otherwise that happens when the iterator
            is garbage-collected, a few event-loop turns later).

        Raises:
            ValueError: ``concurrency`` is not a positive integer.
        """
        self._ensure_session()
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        if concurrency > self._max_connections:
            log.debug(
                "concurrency %d capped at max_connections=%d", concurrency, self._max_connections
            )
            concurrency = self._max_connections
        # Halve on a 429 but win the slots back quickly: one more slot per few
        # successes rather than per full window, or a handful of scattered 429s
        # keeps a large job at a fraction of its concurrency for most of its run.
        limit = AdaptiveLimit(concurrency, increase_after_max=_GROWTH_STEP)
        return fan_out(
            sids,
            self._fetch_call,  # fan_out checks each SID first, with check_sid
            concurrency=limit,
            ordered=ordered,
            validate=check_sid,
            on_progress=on_progress,
            throttle_hook=throttle_listener,
            wrap=build_call_result,  # CallResult(sid, call, error), faster
        )

    async def fetch_calls(
        self,
        sids: Iterable[str] | AsyncIterable[str],
        *,
        concurrency: int = 64,
        on_progress: Callable[[BulkProgress], None] | None = None,
    ) -> BulkResult:
        """Look up many calls and collect the outcome: a convenience for small jobs.

        Every distinct SID ends up in exactly one of ``found``, ``missing``
        (the API answered 404) and ``failed`` (any other error, including an
        invalid SID). Call :meth:`BulkResult.raise_for_failures` to turn
        failures into an exception.
        """
        found: dict[str, Call] = {}
        missing: list[str] = []
        failed: dict[str, Exception] = {}
        async for result in self.get_calls(sids, concurrency=concurrency, on_progress=on_progress):
            if result.call is not None:
                found[result.sid] = result.call
            elif isinstance(result.error, NotFoundError):
                missing.append(result.sid)
            else:
                failed[result.sid] = result.error or RuntimeError("no result")
        return BulkResult(found=found, missing=tuple(missing), failed=failed)
