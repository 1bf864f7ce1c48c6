"""Calls that progress on the emulator's clock: their timeline, their state, their events.

A placed call goes ``queued`` → ``initiated`` → ``ringing`` → ``in-progress`` → a final
status, as the service reports them (API-NOTES §10.5), and a completed call gets its
price some time after it ends. Nothing reads the wall clock: the emulator's
:meth:`~signalwire_calls.testing.FakeSignalWire.advance` moves time.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from signalwire_calls.testing._data import rfc2822

__all__ = ["EVENTS", "OUTCOMES", "Event", "PlacedCall"]

#: The final statuses a placed call may end with.
OUTCOMES: Final = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
#: The ``StatusCallbackEvent`` names, and the status each reports (``answered`` is
#: ``in-progress``, as on Twilio; the ``completed`` event reports any final status).
EVENTS: Final = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}
#: Seconds a call spends ``initiated`` before it rings (or fails, or is busy).
_SETUP: Final = 1.0
#: Per started minute, in USD, as the generated calls are priced.
_RATE: Final = {"inbound": 0.00255}
_OUTBOUND_RATE: Final = 0.00464
#: SignalWire's SIP result codes on the unanswered samples (API-NOTES §10.3, V1 and V2).
_SIP_CODES: Final = {"busy": "486", "no-answer": "487"}


@attrs.frozen
class Event:
    """One status-callback event of a placed call, due at ``when``."""

    when: datetime
    sid: str
    name: str
    status: str


@attrs.define
class PlacedCall:
    """A call whose status follows the emulator's clock.

    Offsets are seconds after ``created``; the call is ``queued`` until ``queue``,
    ``initiated`` for a second, then rings for ``ring`` seconds and talks for ``talk``
    (``outcome`` ``"completed"``), or ends after ringing (``"no-answer"``,
    ``"canceled"``), or ends instead of ringing (``"busy"``, ``"failed"``).
    ``outcome=None`` is answered and never ends.
    """

    base: dict[str, Any]
    created: datetime
    queue: float
    ring: float
    talk: float
    outcome: str | None
    price_delay: float | None
    mos: str
    callback: str | None = None
    callback_method: str = "POST"
    events: frozenset[str] = frozenset({"completed"})
    sequence: int = 0
    #: How many entries of :meth:`timeline` have happened (and sent their event).
    done: int = 0

    def timeline(self) -> list[tuple[float, str]]:
        """Return ``(offset, status)`` of every change; ``"priced"`` marks the price."""
        steps = [(0.0, "queued"), (self.queue, "initiated")]
        rings = self.queue + _SETUP
        if self.outcome in {"busy", "failed"}:
            return [*steps, (rings, self.outcome)]
        steps.append((rings, "ringing"))
        answered = rings + self.ring
        if self.outcome in {"no-answer", "canceled"}:
            return [*steps, (answered, self.outcome)]
        steps.append((answered, "in-progress"))
        if self.outcome is None:
            return steps
        ended = answered + self.talk
        steps.append((ended, "completed"))
        if self.price_delay is not None:
            steps.append((ended + self.price_delay, "priced"))
        return steps

    def due(self, now: datetime) -> list[tuple[datetime, str]]:
        """Return the changes that happened by ``now`` and were not returned before."""
        timeline = self.timeline()
        happened = [
            (self.created + timedelta(seconds=offset), status)
            for offset, status in timeline[self.done :]
            if self.created + timedelta(seconds=offset) <= now
        ]
        self.done += len(happened)
        return happened

    def wire(self) -> dict[str, Any]:
        """Return the call's wire dict in its current state (what :meth:`due` reached)."""
        timeline = self.timeline()[: self.done]
        offsets = {status: offset for offset, status in timeline}
        status = next(s for _, s in reversed(timeline) if s != "priced")
        at = self.created.__add__
        rang = offsets.get("ringing")
        call = dict(self.base)
        start: datetime | None = None
        end: datetime | None = None
        duration = 0
        if status in OUTCOMES:
            end = at(timedelta(seconds=offsets[status]))
            start = at(timedelta(seconds=rang)) if rang is not None else end
            duration = math.ceil((end - start).total_seconds())
        elif status == "in-progress" and rang is not None:
            start = at(timedelta(seconds=rang))
        priced = "priced" in offsets
        direction = str(call.get("direction"))
        price = round(_RATE.get(direction, _OUTBOUND_RATE) * max(1, math.ceil(duration / 60)), 5)
        call.update(
            status=status,
            date_updated=rfc2822(at(timedelta(seconds=timeline[-1][0]))),
            start_time=rfc2822(start) if start else None,
            end_time=rfc2822(end) if end else None,
            duration=duration,
            price=price if priced else None,
        )
        if "audio_in_mos" in call:
            call["audio_in_mos"] = self.mos if status == "completed" else None
        if "sip_result_code" in call:
            call["sip_result_code"] = _SIP_CODES.get(status)
        return call

    def event_for(self, when: datetime, status: str) -> Event | None:
        """Return the status-callback event a change sends, or ``None``."""
        if self.callback is None or status in {"queued", "priced"}:
            return None
        name = (
            "completed"
            if status in OUTCOMES
            else next((event for event, reported in EVENTS.items() if reported == status), "")
        )
        if name not in self.events:
            return None
        return Event(when, str(self.base["sid"]), name, status)

    def params(self, event: Event, call: dict[str, Any]) -> dict[str, str]:
        """Return the form parameters of ``event`` (API-NOTES §10.4), numbering it."""
        params = {
            "AccountSid": str(call["account_sid"]),
            "ApiVersion": "2010-04-01",
            "CallSid": event.sid,
            "CallStatus": event.status,
            "Direction": str(call["direction"]),
            "From": str(call["from"]),
            "To": str(call["to"]),
            "Timestamp": rfc2822(event.when),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(self.sequence),
        }
        self.sequence += 1
        if call.get("parent_call_sid"):
            params["ParentCallSid"] = str(call["parent_call_sid"])
        if event.status == "completed":
            params["CallDuration"] = str(call["duration"])
        if event.status in _SIP_CODES:
            params["SipResultCode"] = _SIP_CODES[event.status]
        return params
