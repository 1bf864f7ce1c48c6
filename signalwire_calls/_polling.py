"""Wait for a call to reach a state by polling Retrieve a Call: the schedule and the loop.

No HTTP here: the loop is given the coroutine function that fetches the call (the
client's normal request path, so each poll is retried by the client's policy), and a
clock and a sleep, so tests run it on a fake clock.

SignalWire documents no polling interval (API-NOTES §10.5), a call can stay
non-final for hours, and a completed call's price may appear some time after it
ends; hence a capped backoff and an overall deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from typing import Final

from signalwire_calls._errors import WaitTimeoutError
from signalwire_calls._models import Call, CallStatus

__all__ = [
    "FINAL_STATUSES",
    "POLL_FACTOR",
    "POLL_INITIAL",
    "POLL_JITTER",
    "POLL_MAX",
    "Condition",
    "make_condition",
    "poll_delay",
    "wait_for",
]

log = logging.getLogger("signalwire_calls")

#: The statuses a call never leaves (API-NOTES §10.5).
FINAL_STATUSES: Final = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.FAILED,
        CallStatus.NO_ANSWER,
        CallStatus.CANCELED,
    }
)
_KNOWN_STATUSES: Final = frozenset(str(status) for status in CallStatus)

#: Seconds before the second poll.
POLL_INITIAL: Final = 1.0
#: Each wait is this many times the one before ...
POLL_FACTOR: Final = 1.5
#: ... up to this many seconds.
POLL_MAX: Final = 30.0
#: Seconds before the deadline of the last poll, when the schedule would pass it.
_LAST_POLL_MARGIN: Final = 1.0
#: Each wait is shortened by up to this fraction, at random, so that many waiters
#: started together do not poll in lockstep.
POLL_JITTER: Final = 0.2


def poll_delay(poll: int, jitter: float = 0.0) -> float:
    """Return the seconds to wait after poll number ``poll`` (0 for the first).

    ``min(POLL_MAX, POLL_INITIAL * POLL_FACTOR ** poll) * (1 - POLL_JITTER * jitter)``:
    1, 1.5, 2.25, 3.4, 5.1, 7.6, 11.4, 17.1, 25.6, then 30 seconds, each shortened by
    up to a fifth. ``jitter`` is a number in ``[0, 1]`` (``0`` gives the schedule itself).
    """
    base = POLL_MAX if poll >= 20 else min(POLL_MAX, POLL_INITIAL * POLL_FACTOR**poll)  # noqa: PLR2004 - 1.5**20 is far past the cap
    return base * (1.0 - POLL_JITTER * min(1.0, max(0.0, jitter)))


class Condition:
    """What a wait waits for: a test of a call, and how the messages word it."""

    __slots__ = ("description", "spec", "statuses", "wants_price")

    def __init__(
        self,
        spec: str | frozenset[str],
        description: str,
        statuses: frozenset[str],
        *,
        wants_price: bool,
    ) -> None:
        self.spec = spec
        self.description = description
        self.statuses = statuses
        self.wants_price = wants_price

    def met(self, call: Call) -> bool:
        """Tell whether ``call`` ends the wait.

        A final call always does: it can change no more (except for its price, which
        only ``"priced"`` waits for, and only on a completed call: a call that ended
        any other way is never priced).
        """
        status = str(call.status)
        if status in FINAL_STATUSES:
            return not (self.wants_price and status == CallStatus.COMPLETED and call.price is None)
        return status in self.statuses


def make_condition(until: str | Collection[str]) -> Condition:
    """Check ``until`` and return its :class:`Condition`.

    Raises:
        ValueError: ``until`` is neither ``"final"``, ``"priced"`` nor a non-empty
            collection of call statuses.
    """
    if isinstance(until, str):
        if until == "final":
            return Condition("final", "final", FINAL_STATUSES, wants_price=False)
        if until == "priced":
            return Condition("priced", "final and priced", FINAL_STATUSES, wants_price=True)
        raise ValueError(
            f"until must be 'final', 'priced' or a collection of call statuses, got "
            f"{until!r}; to wait for one status, pass a set: until={{{until!r}}}"
        )
    try:
        statuses = frozenset(str(status) for status in until)
    except TypeError:
        raise ValueError(
            f"until must be 'final', 'priced' or a collection of call statuses, "
            f"got {type(until).__name__}"
        ) from None
    unknown = sorted(statuses - _KNOWN_STATUSES)
    if unknown or not statuses:
        raise ValueError(
            f"until must name call statuses ({', '.join(sorted(_KNOWN_STATUSES))}), "
            f"got {sorted(statuses)!r}"
        )
    wording = " or ".join(sorted(statuses))
    return Condition(statuses, f"{wording} (or final)", statuses, wants_price=False)


async def wait_for(
    fetch: Callable[[str], Awaitable[Call]],
    sid: str,
    condition: Condition,
    *,
    timeout: float,  # noqa: ASYNC109 - a deadline over many polls and sleeps
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
    jitter: Callable[[], float] = random.random,
) -> Call:
    """Poll ``fetch(sid)`` on the :func:`poll_delay` schedule until ``condition`` is met.

    The first poll is immediate. When the next poll would come after the deadline,
    a last one is made a second before it instead (half the time left, if less).
    A poll still running at the deadline is cancelled. Errors of
    a poll (after the client's retries) end the wait: a missing call is a
    ``NotFoundError`` at the first poll.

    Raises:
        WaitTimeoutError: The deadline passed first; ``.call`` is the last call seen.
    """
    deadline = clock() + timeout
    last: Call | None = None
    poll = 0
    final_round = False
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        limit = asyncio.timeout(remaining)
        try:
            async with limit:
                last = await fetch(sid)
        except TimeoutError:
            if not limit.expired():
                raise
            break
        if condition.met(last):
            return last
        remaining = deadline - clock()
        if final_round or remaining <= 0:
            break
        delay = poll_delay(poll, jitter())
        if delay >= remaining - _LAST_POLL_MARGIN:
            # The next poll would be past the deadline: make a last one just before it.
            delay = remaining - min(_LAST_POLL_MARGIN, remaining / 2)
            final_round = True
        log.debug(
            "call %s is %s, waiting for %s: next poll in %.2fs",
            sid,
            last.status,
            condition.description,
            delay,
        )
        poll += 1
        await sleep(delay)
    state = "no poll answered" if last is None else f"its last status was {last.status!s}"
    if last is not None and str(last.status) == CallStatus.COMPLETED and last.price is None:
        state += " (not priced yet)"
    raise WaitTimeoutError(
        f"gave up waiting for call {sid} to be {condition.description} after {timeout:g}s: {state}",
        sid=sid,
        until=condition.spec,
        timeout=timeout,
        call=last,
    )
