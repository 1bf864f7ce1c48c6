"""What the client reports about itself: the events, the hook protocol and the cheap counters.

Pure and dependency-free, at the bottom of the map, so that the retry middleware,
the requester and bulk jobs can all report through an :class:`Emitter`. The
handlers that turn events into log lines, spans and metrics live in the public
``signalwire_calls.instrumentation``.

The hot path pays for nothing nobody reads: an :class:`Emitter` without hooks is
one attribute check per request, and the per-request events (the request and each
attempt) are built only when a hook wants them for that request (its optional
``wants_requests()`` says so, once per request). Retries, give-ups and changes of a
bulk job's concurrency are rare: they are always reported to every hook.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol, TypeAlias, TypeVar

import attrs

__all__ = [
    "AttemptEnded",
    "ClientStats",
    "ConcurrencyChanged",
    "ConcurrencyGauge",
    "Emitter",
    "Event",
    "GaveUp",
    "Hook",
    "RequestEnded",
    "RequestStarted",
    "RequestTrace",
    "RetryScheduled",
    "current_request",
    "error_type",
    "observed",
]

T = TypeVar("T")
log = logging.getLogger("signalwire_calls")


def error_type(status: int | None, error: BaseException | None) -> str | None:
    """Name what went wrong, as OpenTelemetry's ``error.type`` does; ``None`` if nothing did.

    An exception gives its class name (``"timeout"`` for a timeout); an answer of
    400 or more gives its status code as a string.
    """
    if error is not None:
        return "timeout" if isinstance(error, TimeoutError) else type(error).__qualname__
    if status is not None and status >= 400:  # noqa: PLR2004 - the HTTP error range
        return str(status)
    return None


# ---------------------------------------------------------------------- events


@attrs.frozen(kw_only=True)
class RequestStarted:
    """A request is about to be sent (only reported when a hook wants per-request events).

    Attributes:
        method: The HTTP method, ``"GET"``.
        url: The URL without credentials, query or fragment.
        sid: The SID of the call looked up, or ``None`` (a page of List Calls).
    """

    method: str
    url: str
    sid: str | None


@attrs.frozen(kw_only=True)
class AttemptEnded:
    """One attempt of a request ended (only reported when a hook wants per-request events).

    Attributes:
        method: The HTTP method.
        url: The URL without credentials, query or fragment.
        sid: The SID of the call looked up, or ``None``.
        attempt: The attempt's number, from 1.
        status: The answer's status code, or ``None`` if there was no answer.
        error: Why there was no usable answer (a connection error, ``TimeoutError``,
            a body that broke off), or ``None``.
        duration: Seconds from sending to the end of reading the body.
        started_at: When the attempt started, in nanoseconds since the epoch.
    """

    method: str
    url: str
    sid: str | None
    attempt: int
    status: int | None
    error: BaseException | None
    duration: float
    started_at: int

    @property
    def error_type(self) -> str | None:
        """The exception's class name (``"timeout"``), the status of 400 or more, or ``None``."""
        return error_type(self.status, self.error)


@attrs.frozen(kw_only=True)
class RetryScheduled:
    """An attempt failed in a way worth retrying, and the next one is scheduled.

    Reported before the wait, so a hook learns at once that something is wrong.

    Attributes:
        method: The HTTP method.
        url: The URL without credentials, query or fragment.
        sid: The SID of the call looked up, or ``None``.
        attempt: The number of the attempt that failed, from 1.
        attempts: The most attempts the policy allows.
        reason: Why, in a few stable words fit for a metric label: the status code
            (``"503"``, ``"429"``), ``"timeout"``, or the exception's class name.
        status: The failed attempt's status code, or ``None``.
        error: The failed attempt's exception, or ``None``.
        wait: Seconds until the next attempt (backoff or ``Retry-After``).
    """

    method: str
    url: str
    sid: str | None
    attempt: int
    attempts: int
    reason: str
    status: int | None
    error: BaseException | None
    wait: float


@attrs.frozen(kw_only=True)
class GaveUp:
    """A request that kept failing is given up: the caller gets the last error.

    Reported when the attempts run out, or when the service asks to wait longer
    (``Retry-After``) than the policy's ``max_retry_after``.

    Attributes:
        method: The HTTP method.
        url: The URL without credentials, query or fragment.
        sid: The SID of the call looked up, or ``None``.
        attempts: The attempts made.
        reason: As in :class:`RetryScheduled`.
        status: The last status code, or ``None`` if there was no answer.
        error: The last exception, or ``None``.
        elapsed: Seconds since the first attempt started.
    """

    method: str
    url: str
    sid: str | None
    attempts: int
    reason: str
    status: int | None
    error: BaseException | None
    elapsed: float


@attrs.frozen(kw_only=True)
class RequestEnded:
    """A request ended, retries included (only reported when a hook wants per-request events).

    Attributes:
        method: The HTTP method.
        url: The URL without credentials, query or fragment.
        sid: The SID of the call looked up, or ``None``.
        attempts: The attempts made.
        status: The last status code, or ``None`` if there was no answer.
        error: The exception the caller gets, or ``None`` on success.
        elapsed: Seconds since the request started (waiting for a connection slot included).
    """

    method: str
    url: str
    sid: str | None
    attempts: int
    status: int | None
    error: BaseException | None
    elapsed: float

    @property
    def error_type(self) -> str | None:
        """The exception's class name, or ``None`` on success."""
        return error_type(None, self.error)


@attrs.frozen(kw_only=True)
class ConcurrencyChanged:
    """A bulk job's concurrency limit changed: it started, it was throttled, it grew back, it ended.

    Attributes:
        previous: The limit before (0 when the job starts).
        current: The limit now (0 when the job ends).
    """

    previous: int
    current: int


#: Every event a :class:`Hook` may receive.
Event: TypeAlias = (
    RequestStarted | AttemptEnded | RetryScheduled | GaveUp | RequestEnded | ConcurrencyChanged
)


class Hook(Protocol):
    """Anything called with each :data:`Event` of a client; its return value is ignored.

    A hook runs synchronously inside the request, so it must be quick and must not
    block. An exception in it is logged and the hook is not called again.

    A hook may also define ``wants_requests() -> bool``: asked once per request, it
    says whether the per-request events (:class:`RequestStarted`,
    :class:`AttemptEnded`, :class:`RequestEnded`) are worth building for that
    request. When no hook wants them they cost nothing; a hook without the method
    always gets them. A hook may receive them even when it said no (another hook
    wanted them).
    """

    def __call__(self, event: Event, /) -> None: ...


# -------------------------------------------------------------------- dispatch


class Emitter:
    """Deliver events to a client's hooks, isolating the client from their failures.

    Attributes:
        hot: Whether there is any hook at all; checked first on the hot path.
    """

    __slots__ = ("_always", "_hooks", "_probes", "hot")

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self._install(tuple(hooks))

    def _install(self, hooks: tuple[Hook, ...]) -> None:
        probes = [getattr(hook, "wants_requests", None) for hook in hooks]
        self._hooks = hooks
        self._always = any(probe is None for probe in probes)
        self._probes: tuple[Callable[[], bool], ...] = tuple(p for p in probes if p is not None)
        self.hot = bool(hooks)

    @property
    def hooks(self) -> tuple[Hook, ...]:
        """The hooks called, in order."""
        return self._hooks

    def listening(self) -> bool:
        """Return whether any hook wants the per-request events of the next request."""
        if self._always:
            return True
        for probe in self._probes:
            try:
                if probe():
                    return True
            except Exception:  # a broken hook must not break a lookup
                log.exception("a hook's wants_requests() failed; the hook is dropped")
                self._drop(probe)
        return False

    def emit(self, event: Event) -> None:
        """Call every hook with ``event``; a hook that raises is logged and dropped."""
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:  # a broken hook must not break a lookup
                log.exception("the hook %r failed; it will not be called again", hook)
                self._drop(hook)

    def _drop(self, what: object) -> None:
        """Stop calling a hook (``what`` is the hook or its ``wants_requests``)."""
        hooks = tuple(
            hook
            for hook in self._hooks
            if hook is not what and getattr(hook, "wants_requests", None) != what
        )
        self._install(hooks)


#: The request being traced in this task, for the middleware; set only while a
#: hook listens to that request.
current_request: contextvars.ContextVar[RequestTrace | None] = contextvars.ContextVar(
    "signalwire_calls_request", default=None
)


class RequestTrace:
    """The per-request state of a traced request: its identity, its last attempt, its clock."""

    __slots__ = ("_emitter", "_mark", "_started_at", "attempts", "method", "sid", "status", "url")

    def __init__(self, emitter: Emitter, method: str, url: str, sid: str | None) -> None:
        self._emitter = emitter
        self.method = method
        self.url = url
        self.sid = sid
        self.attempts = 0
        self.status: int | None = None
        self._mark = time.perf_counter()
        self._started_at = 0

    def attempt_started(self) -> None:
        """Note the start of an attempt."""
        self._started_at = time.time_ns()
        self._mark = time.perf_counter()

    def attempt_ended(self, attempt: int, status: int | None, error: BaseException | None) -> None:
        """Report the end of an attempt: its status, or the error that ended it."""
        self.attempts = attempt
        self.status = status
        self._emitter.emit(
            AttemptEnded(
                method=self.method,
                url=self.url,
                sid=self.sid,
                attempt=attempt,
                status=status,
                error=error,
                duration=time.perf_counter() - self._mark,
                started_at=self._started_at,
            )
        )


async def observed(
    emitter: Emitter, work: Coroutine[Any, Any, T], method: str, url: str, sid: str | None
) -> T:
    """Await ``work`` (one request) between a :class:`RequestStarted` and a :class:`RequestEnded`.

    Runs inside the task that awaits the request, so the middleware (through
    :data:`current_request`) and the hooks (through their own context variables,
    like the caller's current span) see this request's context.
    """
    trace = RequestTrace(emitter, method, url, sid)
    started = time.perf_counter()
    emitter.emit(RequestStarted(method=method, url=url, sid=sid))
    token = current_request.set(trace)
    error: BaseException | None = None
    try:
        return await work
    except BaseException as err:
        error = err
        raise
    finally:
        current_request.reset(token)
        emitter.emit(
            RequestEnded(
                method=method,
                url=url,
                sid=sid,
                attempts=trace.attempts,
                status=trace.status,
                error=error,
                elapsed=time.perf_counter() - started,
            )
        )


# -------------------------------------------------------------------- counters


class ConcurrencyGauge:
    """The concurrency limits of a client's running bulk jobs: their sum now, and the lowest."""

    __slots__ = ("_emitter", "current", "lowest")

    def __init__(self, emitter: Emitter) -> None:
        self._emitter = emitter
        self.current = 0
        self.lowest: int | None = None

    def changed(self, previous: int, current: int) -> None:
        """Note that a job's limit went from ``previous`` to ``current`` (0: started, ended)."""
        self.current += current - previous
        if current and (self.lowest is None or current < self.lowest):
            self.lowest = current
        if self._emitter.hot:
            self._emitter.emit(ConcurrencyChanged(previous=previous, current=current))


@attrs.frozen(kw_only=True)
class ClientStats:
    """A snapshot of what a :class:`~signalwire_calls.CallsClient` has done (``client.stats``).

    Counted always, with or without hooks, at the cost of a few integer additions.

    Attributes:
        requests: Requests started (a lookup or a page is one request, retries included).
        attempts: Attempts made, the first of each request included.
        retries: Attempts that were retries (``attempts`` minus first attempts).
        retries_by_reason: ``retries`` split by reason: the status code (``"503"``,
            ``"429"``), ``"timeout"``, or the exception's class name.
        throttled: Answers of HTTP 429, retried or not.
        failures: Requests given up on: every attempt failed, or the service asked
            to wait longer than ``max_retry_after``.
        concurrency: The sum of the concurrency limits of the bulk jobs running now.
        lowest_concurrency: The lowest limit a bulk job of this client has been cut
            to (``None`` before the first job).
    """

    requests: int
    attempts: int
    retries: int
    retries_by_reason: Mapping[str, int]
    throttled: int
    failures: int
    concurrency: int
    lowest_concurrency: int | None
