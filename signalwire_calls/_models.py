"""The values this library returns: frozen, slotted attrs classes and string enums.

Nothing here knows JSON key names, cattrs or HTTP. Turning a response into a
:class:`Call` and back is ``signalwire_calls._wire``'s job: it installs itself as
:attr:`Call._wire` when it is imported (the package imports it), so that
``Call.from_dict()``/``to_dict()`` reach it without this module importing it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal, Protocol, TypeAlias

import attrs

from signalwire_calls._errors import BulkLookupError, NotFoundError, SignalWireError

__all__ = [
    "BulkResult",
    "Call",
    "CallDirection",
    "CallDirectionName",
    "CallFound",
    "CallResult",
    "CallStatus",
    "CallStatusName",
    "FailedLookup",
    "LookupFailure",
    "SubresourceUris",
    "UnknownValue",
    "build_call",
    "build_call_result",
    "build_subresource_uris",
]

#: What a lookup that returned no call carries: a :class:`~signalwire_calls.SignalWireError`
#: (:class:`~signalwire_calls.NotFoundError` for a SID that does not exist), or a
#: ``ValueError`` for a SID that is not a UUID (no request was sent).
LookupFailure: TypeAlias = SignalWireError | ValueError


class WireForm(Protocol):
    """How calls are read from and written to the API's JSON (``signalwire_calls._wire``)."""

    def structure(self, data: Mapping[str, Any]) -> Call:
        """Build a call from a decoded JSON object; raise ``DecodeError`` if it is not one."""
        ...

    def unstructure(self, call: Call) -> dict[str, Any]:
        """Return a call in the API's JSON shape, exactly as it was received."""
        ...

    def extra_keys(self, call: Call) -> Mapping[str, Any]:
        """Return the keys of a call's response that the library does not model."""
        ...


class UnknownValue(str):
    """A status or direction that this version of the library does not know yet.

    The API may add values (it added ``initiated`` and ``outbound-dial``); such a
    value is kept verbatim, never rejected, as this ``str`` subclass, so that
    ``isinstance(call.status, CallStatus)`` tells a known value from a new one and
    type checkers see ``CallStatus | UnknownValue`` rather than plain ``str``. It
    compares equal to its text and serialises as a plain string.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"UnknownValue({str.__repr__(self)})"


class CallStatus(enum.StrEnum):
    """A call's status. Compares equal to its API string (``CallStatus.COMPLETED == "completed"``).

    ``initiated`` is not in the published enum but is what the service reports for
    a call that has just been created (see :doc:`real-responses`). A value this enum
    does not know is kept as an :class:`UnknownValue` on :attr:`Call.status`, never
    rejected.
    """

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    CANCELED = "canceled"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"


class CallDirection(enum.StrEnum):
    """Who placed the call. Compares equal to its API string.

    The published spec lists only ``inbound`` and ``outbound``; the service sends
    ``outbound-api`` (created through the REST API) and ``outbound-dial`` (a leg
    created by ``<Dial>``). Unknown values are kept as :class:`UnknownValue`.
    """

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    OUTBOUND_API = "outbound-api"
    OUTBOUND_DIAL = "outbound-dial"


#: The statuses as strings, for a filter typed as text:
#: ``iter_calls(status="completed")`` type-checks, ``status="complete"`` does not.
CallStatusName: TypeAlias = Literal[
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "canceled",
    "completed",
    "busy",
    "failed",
    "no-answer",
]
#: The directions as strings.
CallDirectionName: TypeAlias = Literal["inbound", "outbound", "outbound-api", "outbound-dial"]


@attrs.frozen(weakref_slot=False)  # no __weakref__: see build_call()
class SubresourceUris:
    """Links to a call's sub-resources, as the API returns them (paths, no host).

    Attributes:
        recordings: The path of the call's recordings list, or ``None`` if absent.
        notifications: The path of the call's notifications list, or ``None`` if absent.
    """

    recordings: str | None = None
    notifications: str | None = None


@attrs.frozen(repr=False, weakref_slot=False)  # no __weakref__: see build_call()
class Call:
    """One call record of the Calls resource, typed and immutable.

    Field names are the API's, except ``from`` which is ``from_``. Dates are aware
    UTC datetimes. ``status`` and ``direction`` are enum members when the value is
    known and an :class:`UnknownValue` (a ``str``) otherwise. Fields that older
    responses lack (the audio quality family, ``sip_result_code``) are ``None`` when
    absent.

    Build one from a decoded JSON object with :meth:`from_dict`; :meth:`to_dict`
    gives back exactly the keys and values that were received. Calls cannot be
    weakly referenced (they have no ``__weakref__`` slot).
    """

    sid: str
    account_sid: str
    date_created: datetime
    date_updated: datetime
    to: str
    from_: str
    status: CallStatus | UnknownValue
    direction: CallDirection | UnknownValue
    duration: int
    uri: str
    api_version: str = "2010-04-01"
    price_unit: str | None = "USD"
    parent_call_sid: str | None = None
    formatted_to: str | None = None
    to_formatted: str | None = None
    formatted_from: str | None = None
    from_formatted: str | None = None
    phone_number_sid: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    price: Decimal | None = None
    answered_by: str | None = None
    forwarded_from: str | None = None
    caller_name: str | None = None
    subresource_uris: SubresourceUris | None = None
    annotation: str | None = None
    group_sid: str | None = None
    audio_in_mos: float | None = None
    sip_result_code: str | None = None
    audio_rtt_avg: float | None = None
    audio_rtt_min: float | None = None
    audio_rtt_max: float | None = None
    audio_out_jitter_min: float | None = None
    audio_out_jitter_max: float | None = None
    audio_out_jitter_avg: float | None = None
    audio_out_lost: float | None = None
    #: Keys of the API response this record was built from, in wire order
    #: (``None``: built in code, so every field counts as present).
    _keys: tuple[str, ...] | None = attrs.field(default=None, eq=False, alias="_keys")
    #: Values whose wire form the typed field cannot reproduce (a string MOS, a
    #: date with a non-UTC offset), and keys this version does not know.
    _raw: Mapping[str, Any] | None = attrs.field(default=None, eq=False, alias="_raw")
    #: The wire form (set by ``signalwire_calls._wire`` on import; a class attribute).
    _wire: ClassVar[WireForm]

    @property
    def extra(self) -> Mapping[str, Any]:
        """Keys the API sent that this version of the library does not model."""
        return self._wire.extra_keys(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Call:
        """Build a call from a decoded JSON object of the API.

        Raises:
            DecodeError: The object is not a valid call; the message names the field.
        """
        return cls._wire.structure(data)

    def to_dict(self) -> dict[str, Any]:
        """Return the call in the API's JSON shape, exactly as it was received.

        The keys are those of the response (none added, none dropped, in wire
        order), ``from`` is ``"from"``, dates are RFC 2822 strings and ``price``
        is a number, so ``json.dumps(call.to_dict())`` equals what the API sent.
        """
        return self._wire.unstructure(self)

    def __repr__(self) -> str:
        return (
            f"Call(sid={self.sid!r}, status={str(self.status)!r}, "
            f"direction={str(self.direction)!r}, from_={self.from_!r}, to={self.to!r}, "
            f"date_created={self.date_created.isoformat()!r}, duration={self.duration!r}, "
            f"price={self.price!r})"
        )


@attrs.frozen(weakref_slot=False)  # no __weakref__: see build_call()
class CallFound:
    """A lookup of a bulk job that found its call (one kind of :data:`CallResult`).

    Attributes:
        sid: The SID, as it was given.
        call: The call.
    """

    sid: str
    call: Call

    @property
    def error(self) -> None:
        """Always ``None``: the lookup succeeded."""
        return

    @property
    def ok(self) -> Literal[True]:
        """Always ``True``: ``if result.ok:`` narrows a :data:`CallResult` to this class."""
        return True

    @property
    def outcome(self) -> Literal["found"]:
        """Always ``"found"`` (see :attr:`FailedLookup.outcome`)."""
        return "found"


@attrs.frozen(weakref_slot=False)  # no __weakref__: see build_call()
class FailedLookup:
    """A lookup of a bulk job that returned no call (one kind of :data:`CallResult`).

    Attributes:
        sid: The SID, as it was given.
        error: Why: a :class:`~signalwire_calls.NotFoundError` for a SID that does not
            exist, a ``ValueError`` for a SID that is not a UUID (no request was
            sent), or another :class:`~signalwire_calls.SignalWireError`.
    """

    sid: str
    error: LookupFailure

    @property
    def call(self) -> None:
        """Always ``None``: there is no call."""
        return

    @property
    def ok(self) -> Literal[False]:
        """Always ``False``."""
        return False

    @property
    def outcome(self) -> Literal["missing", "failed"]:
        """``"missing"`` (HTTP 404: no such call) or ``"failed"`` (anything else).

        The one rule by which :meth:`~signalwire_calls.CallsClient.get_calls` files
        results into a :class:`BulkResult`, and the command line counts them.
        """
        return "missing" if isinstance(self.error, NotFoundError) else "failed"


#: The outcome of one lookup in a bulk job: a :class:`CallFound` or a
#: :class:`FailedLookup`. Both have ``sid``, ``call``, ``error``, ``ok`` and
#: ``outcome``; ``if result.ok:`` (or ``if result.call is not None:``) narrows the
#: type, so ``result.call`` is a :class:`Call` inside. ``isinstance(x, CallResult)``
#: works too.
CallResult: TypeAlias = CallFound | FailedLookup


@attrs.frozen
class BulkResult:
    """Everything a :meth:`~signalwire_calls.CallsClient.get_calls` job learned.

    Every distinct SID it was given is in exactly one of ``found``, ``missing``
    and ``failed``. ``len(result)`` counts them all.

    Attributes:
        found: Each SID that was found, mapped to its call.
        missing: The SIDs the API answered 404 for (no such call), in arrival order.
        failed: Each SID whose lookup failed, mapped to its error (as in
            :attr:`FailedLookup.error`).
    """

    found: Mapping[str, Call]
    missing: tuple[str, ...]
    failed: Mapping[str, LookupFailure]

    def __len__(self) -> int:
        return len(self.found) + len(self.missing) + len(self.failed)

    def raise_for_failures(self) -> None:
        """Raise :class:`~signalwire_calls.BulkLookupError` if any lookup failed.

        SIDs that do not exist (``missing``) are results, not failures.
        """
        if self.failed:
            raise BulkLookupError(dict(self.failed))


def _positional_builder(cls: type[Any]) -> Callable[..., Any]:
    """Return a constructor of ``cls`` (frozen, slotted attrs) taking every field positionally.

    attrs' frozen ``__init__`` sets each slot through ``object.__setattr__``: 1.5 µs
    for :class:`Call`'s 38 fields. Here a plain class with the very same slots is
    filled by ordinary attribute stores and then retagged as ``cls`` (``__class__``
    assignment, which Python allows between identical slot layouts): 0.4 µs. Neither
    runs validators or converters (``Call`` has none), so the objects are the same;
    tests compare them. The layouts are identical only without a ``__weakref__`` slot,
    which is why ``Call`` has none. Should the retagging ever be refused (another
    Python), this returns ``cls`` itself.
    """
    names = [field.name for field in attrs.fields(cls)]
    twin = type(f"_{cls.__name__}Slots", (), {"__slots__": cls.__slots__})
    params = ", ".join(names)
    stores = "".join(f"    o.{name} = {name}\n" for name in names)
    source = (
        f"def build({params}):\n    o = new(twin)\n{stores}    o.__class__ = cls\n    return o\n"
    )
    namespace: dict[str, Any] = {"new": object.__new__, "twin": twin, "cls": cls}
    exec(source, namespace)  # noqa: S102 - generated from the class's own field names, as attrs does
    build: Callable[..., Any] = namespace["build"]
    try:
        probe = build(*range(len(names)))
    except TypeError:  # pragma: no cover - CPython allows it
        return cls
    return build if type(probe) is cls else cls


#: ``Call(...)`` with every field given positionally, about four times faster.
build_call: Callable[..., Call] = _positional_builder(Call)
#: ``SubresourceUris(recordings, notifications)``, faster.
build_subresource_uris: Callable[..., SubresourceUris] = _positional_builder(SubresourceUris)
_build_found: Callable[[str, Call], CallFound] = _positional_builder(CallFound)
_build_failed: Callable[[str, LookupFailure], FailedLookup] = _positional_builder(FailedLookup)


def build_call_result(sid: str, call: Call | None, error: BaseException | None) -> CallResult:
    """Return ``CallFound(sid, call)``, or ``FailedLookup(sid, error)`` without a call, faster."""
    if call is not None:
        return _build_found(sid, call)
    if not isinstance(error, SignalWireError | ValueError):
        # Outside get_call's contract (a client closed during the job): still a
        # SignalWireError, so that ``error`` keeps its documented type.
        wrapped = SignalWireError(f"lookup of {sid} failed: {error!r}")
        wrapped.__cause__ = error
        error = wrapped
    return _build_failed(sid, error)
