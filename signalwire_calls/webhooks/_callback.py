"""The call status callback as a typed value, and its parser (API-NOTES §10.4)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Final, TypeVar

import attrs

from signalwire_calls._errors import DecodeError
from signalwire_calls._models import CallDirection, CallStatus
from signalwire_calls.webhooks._forms import Params, form_pairs

_T = TypeVar("_T")

#: The statuses after which a call's status no longer changes (API-NOTES §10.5).
_FINAL: Final = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.FAILED,
        CallStatus.NO_ANSWER,
        CallStatus.CANCELED,
    }
)
_COUNT = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _read_only(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(repr=False)
class CallStatusCallback:
    """One status callback of a call, as SignalWire POSTs it to the ``StatusCallback`` URL.

    Build it with :func:`parse_status_callback`. Parameters the library does not model
    are kept, verbatim, in :attr:`extra`. Optional parameters are ``None`` when absent
    or sent empty (form encoding has no other way to say "none").

    Attributes:
        call_sid: ``CallSid``: the call's SID, a UUID (no ``CA`` prefix on SignalWire).
        account_sid: ``AccountSid``: the project ID.
        status: ``CallStatus``: a :class:`~signalwire_calls.CallStatus`, or the raw
            string for a value this version does not know.
        direction: ``Direction``: a :class:`~signalwire_calls.CallDirection`, or the raw
            string.
        from_: ``From``: the caller as given; often a SIP URI, never checked as E.164.
        to: ``To``: the callee as given; often a SIP URI.
        timestamp: ``Timestamp``: when the event happened, an aware UTC datetime.
        api_version: ``ApiVersion``: ``2010-04-01``.
        callback_source: ``CallbackSource``: ``call-progress-events`` for status callbacks.
        sequence_number: ``SequenceNumber``: the event's rank for this call, from 0;
            callbacks may arrive out of order. Absent from the real samples.
        duration: ``CallDuration``: the call's length in seconds, on ``completed`` only.
        parent_call_sid: ``ParentCallSid``: the parent call of a ``<Dial>`` leg.
        sip_result_code: ``SipResultCode``: the final SIP response code (``"486"``).
        sip_invite_result_phrase: ``SipInviteResultPhrase``: its reason phrase (``OK``).
        hangup_by: ``HangupBy``: the SIP URI or number that hung up (SignalWire only).
        hangup_direction: ``HangupDirection``: ``inbound`` or ``outbound``, the side that
            hung up (SignalWire only).
        forwarded_from: ``ForwardedFrom``: the number that forwarded the call.
        caller_name: ``CallerName``: the caller ID name, when lookup is enabled.
        recording_url: ``RecordingUrl``: the recording's URL.
        recording_sid: ``RecordingSid``: the recording's SID.
        recording_duration: ``RecordingDuration``: the recording's length in seconds.
        audio_in_mos: ``AudioInMos``: the inbound audio's mean opinion score (1 to 5),
            sent as a string such as ``"4.3"``.
        audio_in_average_ptime: ``AudioInAveragePtime``: mean inbound packetization time.
        audio_in_dtmf_packet_count: ``AudioInDtmfPacketCount``: inbound DTMF packets.
        audio_in_flush_packet_count: ``AudioInFlushPacketCount``: inbound packets flushed.
        audio_in_jitter_max_variance: ``AudioInJitterMaxVariance``: largest inbound jitter
            variance.
        audio_in_jitter_min_variance: ``AudioInJitterMinVariance``: smallest inbound jitter
            variance.
        audio_in_largest_jb_size: ``AudioInLargestJbSize``: largest jitter buffer size.
        audio_in_media_packet_count: ``AudioInMediaPacketCount``: inbound media packets.
        audio_in_skip_packet_count: ``AudioInSkipPacketCount``: inbound packets skipped.
        audio_out_dtmf_packet_count: ``AudioOutDtmfPacketCount``: outbound DTMF packets.
        audio_out_media_packet_count: ``AudioOutMediaPacketCount``: outbound media packets.
        extra: Every parameter not modelled above, name to value as received (read-only).
    """

    call_sid: str
    account_sid: str
    status: CallStatus | str
    direction: CallDirection | str
    from_: str
    to: str
    timestamp: datetime
    api_version: str
    callback_source: str
    sequence_number: int | None = None
    duration: int | None = None
    parent_call_sid: str | None = None
    sip_result_code: str | None = None
    sip_invite_result_phrase: str | None = None
    hangup_by: str | None = None
    hangup_direction: str | None = None
    forwarded_from: str | None = None
    caller_name: str | None = None
    recording_url: str | None = None
    recording_sid: str | None = None
    recording_duration: int | None = None
    audio_in_mos: float | None = None
    audio_in_average_ptime: int | None = None
    audio_in_dtmf_packet_count: int | None = None
    audio_in_flush_packet_count: int | None = None
    audio_in_jitter_max_variance: int | None = None
    audio_in_jitter_min_variance: int | None = None
    audio_in_largest_jb_size: int | None = None
    audio_in_media_packet_count: int | None = None
    audio_in_skip_packet_count: int | None = None
    audio_out_dtmf_packet_count: int | None = None
    audio_out_media_packet_count: int | None = None
    # A mapping proxy cannot be hashed: the callback hashes on its modelled fields.
    extra: Mapping[str, str] = attrs.field(
        factory=dict, converter=_read_only, hash=False, kw_only=True
    )

    @property
    def is_final(self) -> bool:
        """Whether the status is final (completed, busy, failed, no-answer or canceled)."""
        return self.status in _FINAL

    def __repr__(self) -> str:
        return (
            f"CallStatusCallback(call_sid={self.call_sid!r}, status={str(self.status)!r}, "
            f"direction={str(self.direction)!r}, from_={self.from_!r}, to={self.to!r}, "
            f"timestamp={self.timestamp.isoformat()!r}, "
            f"sequence_number={self.sequence_number!r}, duration={self.duration!r}, "
            f"sip_result_code={self.sip_result_code!r}, extra={sorted(self.extra)!r})"
        )


_REQUIRED: Final = (
    "CallSid",
    "AccountSid",
    "CallStatus",
    "Direction",
    "From",
    "To",
    "Timestamp",
    "ApiVersion",
    "CallbackSource",
)
#: Every parameter a field of CallStatusCallback models; the others go to ``extra``.
_MODELLED: Final = frozenset(
    {
        *_REQUIRED,
        "SequenceNumber",
        "CallDuration",
        "ParentCallSid",
        "SipResultCode",
        "SipInviteResultPhrase",
        "HangupBy",
        "HangupDirection",
        "ForwardedFrom",
        "CallerName",
        "RecordingUrl",
        "RecordingSid",
        "RecordingDuration",
        "AudioInMos",
        "AudioInAveragePtime",
        "AudioInDtmfPacketCount",
        "AudioInFlushPacketCount",
        "AudioInJitterMaxVariance",
        "AudioInJitterMinVariance",
        "AudioInLargestJbSize",
        "AudioInMediaPacketCount",
        "AudioInSkipPacketCount",
        "AudioOutDtmfPacketCount",
        "AudioOutMediaPacketCount",
    }
)


def parse_status_callback(params: Params) -> CallStatusCallback:
    """Turn the decoded form fields of a call status callback into a typed value.

    Only the parameters present in both real callbacks seen so far are required:
    ``AccountSid``, ``ApiVersion``, ``CallSid``, ``CallStatus``, ``CallbackSource``,
    ``Direction``, ``From``, ``To`` and ``Timestamp``. Every other one is optional,
    including those the published schema marks required (``SequenceNumber``, the audio
    statistics), which real callbacks lack.

    A name sent more than once must carry the same value each time; with different
    values the callback is ambiguous and refused, rather than one value being picked
    silently (no real callback repeats a name).

    This does not check the signature: call :func:`verify_signature` first.

    Args:
        params: The decoded form fields (or, for a ``GET`` callback, the query
            parameters): a mapping, or ``(name, value)`` pairs.

    Returns:
        The callback.

    Raises:
        DecodeError: A required parameter is missing, a value does not parse, or a
            name repeats with different values. ``field`` is the parameter's name and
            ``sid`` the ``CallSid`` (when known); the message says what is wrong.
        TypeError: ``params`` is not a mapping or pairs of strings.
    """
    fields: dict[str, str] = {}
    pairs = form_pairs(params, argument="params")
    sid = next((value for name, value in pairs if name == "CallSid"), None) or None
    for name, value in pairs:
        if fields.setdefault(name, value) != value:
            raise DecodeError(
                f"status callback {_for(sid)}: {name} is sent more than once, "
                "with different values",
                field=name,
                sid=sid,
            )
    read = _Reader(fields, sid)
    return CallStatusCallback(
        call_sid=read.required("CallSid"),
        account_sid=read.required("AccountSid"),
        status=_known(CallStatus, read.required("CallStatus")),
        direction=_known(CallDirection, read.required("Direction")),
        from_=read.required("From", allow_empty=True),
        to=read.required("To", allow_empty=True),
        timestamp=read.timestamp("Timestamp"),
        api_version=read.required("ApiVersion"),
        callback_source=read.required("CallbackSource"),
        sequence_number=read.count("SequenceNumber"),
        duration=read.count("CallDuration"),
        parent_call_sid=read.text("ParentCallSid"),
        sip_result_code=read.text("SipResultCode"),
        sip_invite_result_phrase=read.text("SipInviteResultPhrase"),
        hangup_by=read.text("HangupBy"),
        hangup_direction=read.text("HangupDirection"),
        forwarded_from=read.text("ForwardedFrom"),
        caller_name=read.text("CallerName"),
        recording_url=read.text("RecordingUrl"),
        recording_sid=read.text("RecordingSid"),
        recording_duration=read.count("RecordingDuration"),
        audio_in_mos=read.number("AudioInMos", _DECIMAL, float, "a decimal number"),
        audio_in_average_ptime=read.count("AudioInAveragePtime"),
        audio_in_dtmf_packet_count=read.count("AudioInDtmfPacketCount"),
        audio_in_flush_packet_count=read.count("AudioInFlushPacketCount"),
        # A variance may be negative; the counts above may not.
        audio_in_jitter_max_variance=read.number("AudioInJitterMaxVariance", _SIGNED, int),
        audio_in_jitter_min_variance=read.number("AudioInJitterMinVariance", _SIGNED, int),
        audio_in_largest_jb_size=read.count("AudioInLargestJbSize"),
        audio_in_media_packet_count=read.count("AudioInMediaPacketCount"),
        audio_in_skip_packet_count=read.count("AudioInSkipPacketCount"),
        audio_out_dtmf_packet_count=read.count("AudioOutDtmfPacketCount"),
        audio_out_media_packet_count=read.count("AudioOutMediaPacketCount"),
        extra={name: value for name, value in fields.items() if name not in _MODELLED},
    )


@attrs.define
class _Reader:
    """Read one parameter at a time, raising a :class:`DecodeError` that names it."""

    fields: Mapping[str, str]
    sid: str | None

    def required(self, name: str, *, allow_empty: bool = False) -> str:
        value = self.fields.get(name)
        if value is None:
            raise self.error(name, f"has no {name} parameter, which is required")
        if not value and not allow_empty:
            raise self.error(name, f"has an empty {name}")
        return value

    def timestamp(self, name: str) -> datetime:
        value = self.required(name)
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise self.error(
                name,
                f"has a {name} that is not an RFC 2822 date "
                f"(like 'Thu, 09 Nov 2023 17:05:04 +0000'): {value[:60]!r}",
            ) from None
        # "-0000" (a UTC time from an unknown zone) parses to a naive datetime.
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)

    def text(self, name: str) -> str | None:
        return self.fields.get(name) or None

    def count(self, name: str) -> int | None:
        return self.number(name, _COUNT, int, "a whole number >= 0")

    def number(
        self,
        name: str,
        pattern: re.Pattern[str],
        parse: Callable[[str], _T],
        what: str = "a whole number",
    ) -> _T | None:
        value = self.fields.get(name)
        if not value:
            return None
        if not pattern.fullmatch(value):
            raise self.error(name, f"has a {name} that is not {what}: {value[:60]!r}")
        return parse(value)

    def error(self, name: str, problem: str) -> DecodeError:
        return DecodeError(f"status callback {_for(self.sid)} {problem}", field=name, sid=self.sid)


def _for(sid: str | None) -> str:
    return f"for call {sid}" if sid else "for an unknown call"


def _known(enum: Callable[[str], _T], value: str) -> _T | str:
    try:
        return enum(value)
    except ValueError:
        return value
