"""Retries as an aiohttp client middleware.

The middleware owns everything that happens per *attempt*: the optional rate
cap, the per-attempt timeout, reading (and size-capping) the body, and deciding
whether to try again. aiohttp's own ``ClientTimeout.total`` would span the whole
middleware loop, so the client sets none and the bound lives here. The pure
pieces it is built from, :class:`RetryPolicy` and :func:`parse_retry_after`, are
in ``_retry_policy.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import attrs
from aiohttp import hdrs

from signalwire_calls._errors import DecodeError
from signalwire_calls._retry_policy import RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from aiohttp.client_middlewares import ClientHandlerType

__all__ = [
    "AttemptsExhaustedError",
    "RetryMiddleware",
    "RetryPolicy",
    "parse_retry_after",
    "throttle_listener",
]

log = logging.getLogger("signalwire_calls")

#: Statuses worth another attempt (API-NOTES §5.2-5.3; the same set as
#: SignalWire's own 2026 SDK plus 408).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Set by a bulk job so that every 429 seen by its requests, even one that is
#: then retried successfully, shrinks the job's concurrency.
throttle_listener: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "signalwire_calls_throttle_listener", default=None
)


class _Limiter(Protocol):
    async def acquire(self, amount: float = 1) -> None: ...


_RETRYABLE_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class AttemptsExhaustedError(Exception):
    """Every attempt failed without a response; ``__cause__`` is the last error.

    Deliberately not an aiohttp error: aiohttp re-runs the whole middleware chain
    once after a ``ServerDisconnectedError`` on a reused connection, which would
    silently double the policy's attempts.
    """

    def __init__(self, attempts: int) -> None:
        super().__init__(f"{attempts} attempt(s)")
        self.attempts = attempts


class _Watchdog:
    """Cancel attempts that outlive the timeout, with one timer for all of them.

    ``asyncio.timeout()`` schedules and cancels a timer handle for every request,
    which measured as a tenth of a lookup's cost at high concurrency. Here an
    attempt only records its task and the current *epoch* (a counter one timer
    advances every quarter of the timeout while attempts run), and the timer
    cancels the tasks whose attempt began five epochs ago: so an attempt is cut
    off between ``timeout`` and ``1.25 * timeout`` after it starts, without a
    clock read or an object per attempt. Cancellation is turned into
    ``TimeoutError`` by the attempt, as ``asyncio.timeout()`` does (the task's
    ``uncancel()`` tells ours from a caller's).
    """

    __slots__ = ("_active", "_epoch", "_expired", "_handle", "_loop", "_tick", "timeout")

    #: Epochs (quarters of the timeout) an attempt may span before it is cut off.
    _SPAN = 5

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tick = timeout / 4
        self._active: dict[asyncio.Task[Any], int] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._epoch = 0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def enter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any]:
        """Start watching the running task's attempt; pass the task to :meth:`leave`."""
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - aiohttp always runs requests in a task
            raise RuntimeError("an attempt must run inside a task")
        if self._handle is None or self._loop is not loop:
            # The timer is idle: a new epoch starts now, so that the first one is whole.
            self._loop = loop
            self._epoch += 1
            self._handle = loop.call_later(self._tick, self._check)
        self._active[task] = self._epoch
        return task

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the watchdog cancelled ``task``'s attempt (call before :meth:`leave`)."""
        return task in self._expired

    def leave(self, task: asyncio.Task[Any]) -> None:
        """Stop watching ``task``'s attempt."""
        del self._active[task]
        if self._expired:
            self._expired.discard(task)

    def _check(self) -> None:
        self._epoch += 1
        if not self._active:  # idle: stop ticking until the next attempt
            self._handle = None
            return
        stale = self._epoch - self._SPAN
        for task, epoch in self._active.items():
            if epoch <= stale and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by enter() before any tick
        self._handle = loop.call_later(self._tick, self._check)


@attrs.define(eq=False)
class RetryMiddleware:
    """The aiohttp client middleware that runs each attempt and retries what is worth it.

    It returns the last response with its body already read (so a body that
    breaks off is retried like a reset), or raises :class:`AttemptsExhaustedError`
    (caused by the last connection error or ``TimeoutError``) when every attempt
    failed that way.
    """

    policy: RetryPolicy
    timeout: float | None
    max_body_size: int
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    limiter: _Limiter | None = None
    rng: random.Random = attrs.field(factory=random.Random)
    #: Counters, for tests and the chaos report.
    retries: int = 0
    attempts_made: int = 0
    _watchdog: _Watchdog | None = attrs.field(default=None, init=False, repr=False)

    async def __call__(  # noqa: C901, PLR0912, PLR0915 - attempts inline: one coroutine less
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        policy = self.policy
        retryable = request.method in ("GET", "HEAD")
        attempts = policy.attempts if retryable else 1
        attempt = 0
        if self.timeout is not None and self._watchdog is None:
            self._watchdog = _Watchdog(self.timeout)
        watch = self._watchdog
        while True:
            attempt += 1
            self.attempts_made += 1
            try:
                # One attempt: send, and read the body under the watchdog.
                if self.limiter is not None:
                    await self.limiter.acquire()
                    waited = True
                else:
                    waited = attempt > 1  # a backoff came first
                if (
                    waited and request.session.closed
                ):  # aclose() ran meanwhile: aiohttp would assert
                    raise aiohttp.ClientConnectionError("the client was closed")
                task = watch.enter(request.loop) if watch is not None else None
                try:
                    response = await handler(request)
                    try:
                        length = response.content_length
                        if (
                            length is not None
                            and length <= self.max_body_size
                            and not response.headers.get(hdrs.CONTENT_ENCODING)
                        ):
                            await response.read()  # the usual case, in one go
                        else:
                            await self._read_capped(response)
                    except BaseException:
                        response.close()
                        raise
                except asyncio.CancelledError:
                    # ours, and not also cancelled by a caller
                    if (
                        watch is not None
                        and task is not None
                        and watch.expired(task)
                        and task.uncancel() == 0
                    ):
                        raise TimeoutError(
                            f"the attempt took longer than {self.timeout}s"
                        ) from None
                    raise
                finally:
                    if watch is not None and task is not None:
                        watch.leave(task)
            except aiohttp.ClientSSLError:
                raise  # a certificate or TLS setup error: no retry will change it
            except _RETRYABLE_ERRORS as err:
                if attempt >= attempts or request.session.closed:
                    raise AttemptsExhaustedError(attempt) from err
                wait = policy.backoff(attempt, self.rng)
                reason = "timed out" if isinstance(err, TimeoutError) else repr(err)
            else:
                if response.status not in RETRY_STATUSES or not retryable:
                    return response
                hinted = self._wait_after(response, attempt, attempts)
                if hinted is None:
                    return response  # the caller maps it
                wait, reason = hinted, f"HTTP {response.status}"
            self.retries += 1
            log.debug(
                "Retrying %s %s in %.2fs (attempt %d of %d failed: %s)",
                request.method,
                request.url.with_query(None),
                wait,
                attempt,
                attempts,
                reason,
            )
            await self.sleep(wait)

    def _wait_after(
        self, response: aiohttp.ClientResponse, attempt: int, attempts: int
    ) -> float | None:
        """Return how long to wait before retrying a retryable status, or ``None`` to stop."""
        if response.status == 429:  # noqa: PLR2004
            listener = throttle_listener.get()
            if listener is not None:
                listener()
        hint = parse_retry_after(response.headers.get(hdrs.RETRY_AFTER))
        if attempt >= attempts or (hint is not None and hint > self.policy.max_retry_after):
            return None  # out of attempts, or a too-long hint that is not slept on
        return hint if hint is not None else self.policy.backoff(attempt, self.rng)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> None:
        """Read the body inside the attempt, refusing more than ``max_body_size`` bytes."""
        cap = self.max_body_size
        length = response.content_length
        if length is not None and length > cap:
            raise DecodeError(
                f"Refusing a response body of {length} bytes from {response.url.with_query(None)}"
                f" (the limit is {cap} bytes)"
            )
        # Content-Length counts the encoded bytes: a compressed body can inflate far
        # past the cap (a "zip bomb"), so only an unencoded one is read in one go.
        if length is not None and not response.headers.get(hdrs.CONTENT_ENCODING):
            await response.read()
            return
        chunks: list[bytes] = []
        size = 0
        while chunk := await response.content.read(65536):
            size += len(chunk)
            if size > cap:
                raise DecodeError(
                    f"Refusing a response body of more than {cap} bytes from "
                    f"{response.url.with_query(None)}"
                )
            chunks.append(chunk)
        # aiohttp's read() returns _body once it is set; this keeps the capped read
        # and the cached body in one place without a second buffer.
        response._body = b"".join(chunks)  # noqa: SLF001
