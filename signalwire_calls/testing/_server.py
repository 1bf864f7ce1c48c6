"""The emulator: :class:`FakeSignalWire`, its data, routing, auth and faults.

Responses are built from bytes serialised once per call, so a soak of tens of
thousands of lookups spends its time in the client, not here.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Collection
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from aiohttp import web

from signalwire_calls.testing._callbacks import CallbackDelivery, deliver
from signalwire_calls.testing._callbacks import signing_key as _signing_key
from signalwire_calls.testing._data import (
    DEFAULT_NOW,
    EXAMPLE_CALL,
    LAML_PREFIX,
    CallFactory,
    identity,
)
from signalwire_calls.testing._faults import FaultKind, FaultProfile, RequestRecord, Scripted
from signalwire_calls.testing._listing import Listing, ListingError
from signalwire_calls.testing._progress import EVENTS, OUTCOMES, Event, PlacedCall
from signalwire_calls.testing._replies import FaultScript, error_body, send

if TYPE_CHECKING:
    from types import TracebackType

    from signalwire_calls import CallsClient

__all__ = ["CallbackDelivery", "FakeSignalWire", "FaultProfile", "RequestRecord"]

_PREFIXES = (LAML_PREFIX, "/2010-04-01")


class FakeSignalWire:
    """A local SignalWire Calls API on ``127.0.0.1``, seeded with realistic calls.

    See :mod:`signalwire_calls.testing` for a tour. Construct, then ``async with``
    (or :meth:`start` and :meth:`close`).

    Args:
        calls: How many calls to generate.
        seed: Seeds the calls and, unless given, the project id and token.
        project_id: The project id (``AccountSid``) clients must use.
        api_token: The API token clients must use.
        host: The address to listen on.
        port: The port; ``0`` picks a free one.
        now: ``date_created`` of the newest generated call, and where the
            emulator's clock (:attr:`now`) starts.
        faults: Random faults to inject (see :class:`FaultProfile`).
        record_requests: Whether to keep :attr:`requests` (turn off for long soaks).
        signing_key: The project's Signing Key that status callbacks are signed
            with; derived from ``seed`` unless given (``PSK_`` and 24 characters).
    """

    def __init__(
        self,
        calls: int = 100,
        seed: int = 1,
        *,
        project_id: str | None = None,
        api_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        now: datetime = DEFAULT_NOW,
        faults: FaultProfile | None = None,
        record_requests: bool = True,
        signing_key: str | None = None,
    ) -> None:
        default_project, default_token = identity(seed)
        self.signing_key = signing_key or _signing_key(seed)
        self.callbacks: list[CallbackDelivery] = []
        self._now = now
        self._placed: dict[str, PlacedCall] = {}
        self._pending: list[tuple[Event, dict[str, str]]] = []
        self.project_id = project_id or default_project
        self.api_token = api_token or default_token
        self.host = host
        self.port = port
        self.faults = faults or FaultProfile()
        self.record_requests = record_requests
        self.requests: list[RequestRecord] = []
        self.faults_injected: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self._factory = CallFactory(self.project_id, seed, now)
        self._listing = Listing(self._factory.generate(calls))
        self._attempts: Counter[str] = Counter()
        self._script = FaultScript()
        self._auth = "Basic " + base64.b64encode(
            f"{self.project_id}:{self.api_token}".encode()
        ).decode("ascii")
        self._server: asyncio.Server | None = None
        self._web: web.Server | None = None
        self._closing = asyncio.Event()

    # -- data ---------------------------------------------------------------

    @property
    def calls(self) -> dict[str, dict[str, Any]]:
        """Map each SID to its wire dict, exactly as served on the ``/api/laml`` prefix."""
        return self._listing.calls

    @property
    def call_sids(self) -> list[str]:
        """The SIDs of all calls, newest first (the list order)."""
        return list(self._listing.order)

    def add_call(self, **fields: object) -> dict[str, Any]:
        """Add a call and return its wire dict; unspecified fields are filled realistically.

        Keys are wire names (``from`` may be given as ``from_``); a datetime value is
        formatted as RFC 2822. ``date_created`` defaults to one second after the newest
        call, and the call is listed by its ``date_created``. Keys that are not wire
        keys are appended, to exercise clients with fields they do not know; pass
        ``omit=("audio_in_mos", ...)`` to drop keys, as older records do.
        """
        omit = fields.pop("omit", ())
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        when = fields.get("date_created") or self._listing.newest_created(DEFAULT_NOW)
        if isinstance(when, str):
            when = parsedate_to_datetime(when)
        if not isinstance(when, datetime):
            raise TypeError(f"date_created must be a datetime or RFC 2822 text, not {when!r}")
        parent = self.calls.get(str(fields.get("parent_call_sid")))
        direction = str(fields.get("direction", "outbound-dial" if parent else "inbound"))
        call = self._factory.make(when, direction, parent=parent, overrides=fields)
        for key in omit if isinstance(omit, (tuple, list, set, frozenset)) else ():
            call.pop(str(key), None)
        self._listing.add(call)
        return call

    # -- calls that progress ---------------------------------------------------

    @property
    def now(self) -> datetime:
        """The time on the emulator's clock, which only :meth:`advance` moves."""
        return self._now

    def place_call(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        outcome: str | None = "completed",
        queue: float = 1.0,
        ring: float = 5.0,
        talk: float = 30.0,
        price_delay: float | None = 5.0,
        direction: str = "outbound-api",
        status_callback: str | None = None,
        status_callback_event: str | Collection[str] = ("completed",),
        status_callback_method: str = "POST",
        sid: str | None = None,
    ) -> str:
        """Place a call that progresses on the emulator's clock; return its SID.

        From :attr:`now`, the call is ``queued`` for ``queue`` seconds, ``initiated``
        for one, ``ringing`` for ``ring``, ``in-progress`` for ``talk``, then
        ``completed``, and priced ``price_delay`` seconds later (``None``: never).
        ``outcome="busy"`` or ``"failed"`` ends it instead of ringing; ``"no-answer"``
        or ``"canceled"`` after ringing (those are never priced); ``None`` answers it
        and never ends it. It is served and listed like any other call.

        With ``status_callback``, each event of ``status_callback_event``
        (``initiated``, ``ringing``, ``answered``, ``completed``; space-separated or
        a collection; ``completed`` reports any final status) is sent to that URL
        when :meth:`advance` reaches it: a form-encoded ``POST`` (or a ``GET``),
        signed with :attr:`signing_key` in ``X-SignalWire-Signature``.

        Raises:
            ValueError: An outcome, event, method or duration is not valid.
        """
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)} or None, got {outcome!r}")
        events = (
            frozenset(status_callback_event.split())
            if isinstance(status_callback_event, str)
            else frozenset(status_callback_event)
        )
        unknown = events - {*EVENTS, "completed"}
        if unknown:
            raise ValueError(f"unknown status callback events: {sorted(unknown)}")
        method = status_callback_method.upper()
        if method not in {"GET", "POST"}:
            raise ValueError(f"status_callback_method must be GET or POST, got {method!r}")
        for name, value in (("queue", queue), ("ring", ring), ("talk", talk)):
            if not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if price_delay is not None and not price_delay >= 0:
            raise ValueError(f"price_delay must be >= 0 seconds or None, got {price_delay!r}")
        fields: dict[str, object] = {"direction": direction, "status": "queued"}
        fields.update({k: v for k, v in (("to", to), ("from_", from_), ("sid", sid)) if v})
        base = self.add_call(date_created=self._now, **fields)
        placed = PlacedCall(
            base=base,
            created=self._now,
            queue=queue,
            ring=ring,
            talk=talk,
            outcome=outcome,
            price_delay=price_delay,
            mos=f"{4.0 + len(self._placed) % 5 / 10:.1f}",
            callback=status_callback,
            callback_method=method,
            events=events,
        )
        self._placed[base["sid"]] = placed
        self._progress()
        return str(base["sid"])

    async def advance(self, seconds: float) -> list[CallbackDelivery]:
        """Move the clock on; placed calls progress and their callbacks are sent.

        The callbacks that came due are sent one at a time, in the order of their
        events, before this returns; each is recorded in :attr:`callbacks`.

        Returns:
            The callbacks sent by this step (your server's answers included).
        """
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self._now += timedelta(seconds=seconds)
        self._progress()
        return await self._send_callbacks()

    def _progress(self) -> None:
        for placed in self._placed.values():
            changes = placed.due(self._now)
            if not changes:
                continue
            call = placed.wire()
            self._listing.add(call)
            for when, status in changes:
                event = placed.event_for(when, status)
                if event is not None:
                    self._pending.append((event, placed.params(event, call)))

    async def _send_callbacks(self) -> list[CallbackDelivery]:
        pending, self._pending = sorted(self._pending, key=lambda p: p[0].when), []
        if not pending:
            return []
        sent = []
        timeout = aiohttp.ClientTimeout(total=10.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for event, params in pending:
                placed = self._placed[event.sid]
                url, method = str(placed.callback), placed.callback_method
                sent.append(await deliver(session, self.signing_key, url, method, params))
        self.callbacks.extend(sent)
        return sent

    def add_example_call(self) -> dict[str, Any]:
        """Add the call the documentation retrieves (:data:`EXAMPLE_SID`) and return it.

        ``signalwire-calls serve`` serves it, so that every example of the README and
        the docs runs as printed against the emulator.
        """
        return self.add_call(**EXAMPLE_CALL)

    def attempts(self, sid: str) -> int:
        """Return how many GETs of this SID the emulator received (faulted ones too)."""
        return self._attempts[sid]

    # -- faults -------------------------------------------------------------

    def fail(
        self,
        sid_or_all: str | None,
        status: int = 503,
        times: int | None = 2,
        retry_after: float | None = None,
        kind: FaultKind = "status",
    ) -> None:
        """Script the next ``times`` requests for a SID to fail (``None``: every one).

        Args:
            sid_or_all: A call SID, ``"list"`` for list requests, or ``"*"``/``None``
                for every request. A SID's own script is used before the ``"*"`` one.
            status: The HTTP status of a ``"status"`` fault.
            times: How many requests fail; ``None`` keeps failing until :meth:`clear_faults`.
            retry_after: Seconds sent as ``Retry-After`` (429 always sends one).
            kind: ``"status"``, ``"reset"``, ``"truncate"`` or ``"hang"``.
        """
        key = "*" if sid_or_all in {None, "*"} else str(sid_or_all)
        self._script.add(key, Scripted(kind, status, times, retry_after))

    def clear_faults(self) -> None:
        """Forget every scripted fault (the random :attr:`faults` profile stays)."""
        self._script.clear()

    def _pick_fault(self, sid: str | None) -> tuple[FaultKind | None, int, float | None]:
        scripted = self._script.next_for(sid or "list") if self._script else None
        kind: FaultKind | None
        if scripted is not None:
            kind, status, retry_after = scripted.kind, scripted.status, scripted.retry_after
        else:
            kind, status = self.faults.draw()
            retry_after = None
        if kind == "status" and status == 429 and retry_after is None:  # noqa: PLR2004
            retry_after = self.faults.retry_after
        return kind, status, retry_after

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, or stop early and return ``True`` when the emulator is closing."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # -- lifecycle ----------------------------------------------------------

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: resolve returned ``*_uri`` values against this."""
        host = "127.0.0.1" if self.host in {"", "0.0.0.0"} else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The documented base URL, ``{origin}/api/laml/2010-04-01``."""
        return self.origin + LAML_PREFIX

    async def start(self) -> None:
        """Start listening; sets :attr:`port` when it was ``0``."""
        if self._server is not None:
            return
        self._closing = asyncio.Event()
        self._web = web.Server(self._handle, access_log=None)
        web_server = self._web

        def factory() -> web.RequestHandler:
            self.connections += 1
            return web_server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop open connections, waking any hanging handler. Idempotent."""
        server, self._server = self._server, None
        if server is None or self._web is None:
            return
        self._closing.set()
        server.close()
        await self._web.shutdown(timeout=1.0)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def client(self, **overrides: object) -> CallsClient:
        """Return a :class:`~signalwire_calls.CallsClient` on this emulator; use ``async with``."""
        from signalwire_calls import CallsClient  # noqa: PLC0415 - the test kit works without it

        options: dict[str, object] = {
            "project_id": self.project_id,
            "api_token": self.api_token,
            "base_url": self.base_url,
        }
        options.update(overrides)
        return CallsClient(**options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"FakeSignalWire(origin={self.origin!r}, calls={len(self._listing.order)}, "
            f"requests={len(self.requests)}, max_in_flight={self.max_in_flight})"
        )

    # -- HTTP ---------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._respond(request)
        finally:
            self.in_flight -= 1

    async def _respond(self, request: web.BaseRequest) -> web.StreamResponse:
        prefix, sid, route = self._route(request.path)
        if sid is not None and request.method == "GET":
            self._attempts[sid] += 1
        kind, status, retry_after = self._pick_fault(sid)
        delay = self.faults.delay()
        if delay:
            await self._sleep(delay)
        body = b""
        if kind not in {"status", "reset"}:
            status, body = self._answer(request, prefix, sid, route)
        fault = None if kind is None else (str(status) if kind == "status" else kind)
        if fault is not None:
            self.faults_injected[fault] += 1
        if self.record_requests:
            logged = None if kind == "reset" else status
            query = dict(request.query)
            self.requests.append(
                RequestRecord(request.method, request.path, query, sid, logged, fault)
            )
        if kind == "hang" and await self._sleep(self.faults.hang_seconds):
            kind = "reset"  # the emulator is closing: drop the connection now
        return send(request, kind, status, body, retry_after)

    def _route(self, path: str) -> tuple[str, str | None, str | None]:
        """Return ``(prefix, sid or None, route)``; route is ``"calls"``, ``"foreign"`` or None.

        ``"foreign"`` is a Calls path of another project's ``AccountSid``.
        """
        prefix = next((p for p in _PREFIXES if path.startswith(p + "/")), "")
        parts = path[len(prefix) :].removesuffix(".json").split("/")
        if not prefix or len(parts) not in {4, 5} or parts[1] != "Accounts" or parts[3] != "Calls":
            return prefix, None, None
        sid = parts[4] if len(parts) == 5 else None  # noqa: PLR2004
        return prefix, sid, "calls" if parts[2] == self.project_id else "foreign"

    def _answer(
        self, request: web.BaseRequest, prefix: str, sid: str | None, route: str | None
    ) -> tuple[int, bytes]:
        if request.headers.get("Authorization") != self._auth:
            status = 401
        elif route is None:
            status = 404
        elif route == "foreign":
            # Good credentials for another project's path: refused like bad ones.
            status = 401
        elif request.method != "GET":
            status = 405  # the emulator is read-only: no create, update or delete
        elif sid is not None:
            body = self._listing.body(sid, prefix)
            return (200, body) if body is not None else (404, error_body(404))
        else:
            try:
                return 200, self._listing.page(prefix, self.project_id, request.query)
            except ListingError as err:
                return 400, error_body(400, err.code, str(err))
        return status, error_body(status)
