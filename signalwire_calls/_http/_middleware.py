"""Retries as an aiohttp client middleware.

The middleware owns everything that happens per *attempt*: the optional rate
cap, the per-attempt timeout, reading (and size-capping) the body, and deciding
whether to try again. aiohttp's own ``ClientTimeout.total`` would span the whole
middleware loop, so the client sets none and the bound lives here. The rules it
applies, :class:`~signalwire_calls.RetryPolicy` and ``Retry-After`` parsing, are
``signalwire_calls._retry``'s.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import aiohttp
import attrs
from aiohttp import hdrs

from signalwire_calls._errors import DecodeError
from signalwire_calls._http._watchdog import Watchdog
from signalwire_calls._observe import Emitter, GaveUp, RetryScheduled, current_request, error_type
from signalwire_calls._retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from aiohttp.client_middlewares import ClientHandlerType

__all__ = ["AttemptsExhaustedError", "RetryMiddleware", "retry_listener", "throttle_listener"]

log = logging.getLogger("signalwire_calls")

#: Set by a bulk job so that every 429 seen by its requests, even one that is
#: then retried successfully, shrinks the job's concurrency. It returns how long
#: to wait before the retry when the answer gives no Retry-After (``None``: the
#: policy's backoff): a job that paces its requests needs no long jittered wait.
throttle_listener: contextvars.ContextVar[Callable[[], float | None] | None]
throttle_listener = contextvars.ContextVar("signalwire_calls_throttle_listener", default=None)
#: Set by a bulk job to count the retries of its requests (for its progress).
retry_listener: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "signalwire_calls_retry_listener", default=None
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
    #: Where attempts, retries and give-ups are reported (no hooks: nothing is built).
    emitter: Emitter = attrs.field(factory=Emitter)
    #: Counters, for ``CallsClient.stats``, tests and the chaos report.
    retries: int = 0
    attempts_made: int = 0
    throttled: int = 0
    gave_up: int = 0
    retry_reasons: dict[str, int] = attrs.field(factory=dict)
    _watchdog: Watchdog | None = attrs.field(default=None, init=False, repr=False)
    #: Bodies read in chunks under the size cap, for :meth:`body` (rare: chunked
    #: or compressed bodies). Weak: a response nobody asks about takes its body along.
    _capped: weakref.WeakKeyDictionary[aiohttp.ClientResponse, bytes] = attrs.field(
        factory=weakref.WeakKeyDictionary, init=False, repr=False
    )

    async def __call__(  # noqa: C901, PLR0912, PLR0915 - attempts inline: one coroutine less
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        policy = self.policy
        retryable = request.method in ("GET", "HEAD")
        attempts = policy.attempts if retryable else 1
        attempt = 0
        started = time.perf_counter()
        trace = current_request.get() if self.emitter.hot else None
        if self.timeout is not None and self._watchdog is None:
            self._watchdog = Watchdog(self.timeout)
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
                answered = False
                if trace is not None:
                    trace.attempt_started()
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
                    answered = True
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
                    if trace is not None:  # the attempt is over, whichever way
                        if answered:
                            trace.attempt_ended(attempt, response.status, None)
                        else:  # an exception is on its way out of this block
                            trace.attempt_ended(attempt, None, sys.exception())
            except aiohttp.ClientSSLError:
                raise  # a certificate or TLS setup error: no retry will change it
            except _RETRYABLE_ERRORS as err:
                if attempt >= attempts or request.session.closed:
                    self._gave_up(request, attempt, status=None, error=err, started=started)
                    raise AttemptsExhaustedError(attempt) from err
                wait = policy.backoff(attempt, self.rng)
                status: int | None = None
                error: BaseException | None = err
            else:
                if response.status not in RETRY_STATUSES or not retryable:
                    return response
                hinted = self._wait_after(response, attempt, attempts)
                if hinted is None:
                    self._gave_up(
                        request, attempt, status=response.status, error=None, started=started
                    )
                    return response  # the caller maps it
                wait, status, error = hinted, response.status, None
            self.retries += 1
            self._retrying(request, attempt, attempts, status=status, error=error, wait=wait)
            await self.sleep(wait)

    def _retrying(
        self,
        request: aiohttp.ClientRequest,
        attempt: int,
        attempts: int,
        *,
        status: int | None,
        error: BaseException | None,
        wait: float,
    ) -> None:
        """Count a scheduled retry, tell the bulk job, and report :class:`RetryScheduled`."""
        reason = error_type(status, error) or str(status)
        self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
        listener = retry_listener.get()
        if listener is not None:
            listener()
        if self.emitter.hot:
            url, sid = _described(request)
            self.emitter.emit(
                RetryScheduled(
                    method=request.method,
                    url=url,
                    sid=sid,
                    attempt=attempt,
                    attempts=attempts,
                    reason=reason,
                    status=status,
                    error=error,
                    wait=wait,
                )
            )

    def _gave_up(
        self,
        request: aiohttp.ClientRequest,
        attempts: int,
        *,
        status: int | None,
        error: BaseException | None,
        started: float,
    ) -> None:
        """Count a request given up on and report :class:`GaveUp`."""
        self.gave_up += 1
        if self.emitter.hot:
            url, sid = _described(request)
            self.emitter.emit(
                GaveUp(
                    method=request.method,
                    url=url,
                    sid=sid,
                    attempts=attempts,
                    reason=error_type(status, error) or str(status),
                    status=status,
                    error=error,
                    elapsed=time.perf_counter() - started,
                )
            )

    def _wait_after(
        self, response: aiohttp.ClientResponse, attempt: int, attempts: int
    ) -> float | None:
        """Return how long to wait before retrying a retryable status, or ``None`` to stop."""
        suggested = None
        if response.status == 429:  # noqa: PLR2004
            self.throttled += 1
            listener = throttle_listener.get()
            if listener is not None:
                suggested = listener()
        hint = parse_retry_after(response.headers.get(hdrs.RETRY_AFTER))
        if attempt >= attempts or (hint is not None and hint > self.policy.max_retry_after):
            return None  # out of attempts, or a too-long hint that is not slept on
        if hint is not None:
            return hint
        return suggested if suggested is not None else self.policy.backoff(attempt, self.rng)

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
        self._capped[response] = b"".join(chunks)

    async def body(self, response: aiohttp.ClientResponse) -> bytes:
        """Return the body of a response this middleware returned (it has read it already).

        ``read()`` returns the body aiohttp cached when the middleware read it in one
        go; a body read in capped chunks is handed over from this middleware instead.
        """
        if self._capped:
            capped = self._capped.pop(response, None)
            if capped is not None:
                return capped
        return await response.read()


def _described(request: aiohttp.ClientRequest) -> tuple[str, str | None]:
    """Return a request's URL for events (no credentials, query or fragment) and its call SID."""
    url = request.url
    path = url.path
    head, _, last = path.rpartition("/")
    sid = last if last and head.endswith("/Calls") else None
    return str(url.with_user(None).with_query(None).with_fragment(None)), sid
