"""A call's JSON keys: their wire order and the families the structurers treat alike.

The keys and their order are those of real responses (API-NOTES §2.1).
"""

from __future__ import annotations

from typing import Final

from signalwire_calls._models import CallDirection, CallStatus

__all__ = [
    "ATTRIBUTE_OF",
    "AUDIO_KEYS",
    "DATE_KEYS",
    "DIRECTIONS",
    "KNOWN_KEYS",
    "SERVICE_KEYS",
    "STATUSES",
    "SUBRESOURCE_ORDER",
    "WIRE_ORDER",
]

#: Wire order of the keys in real responses (API-NOTES §2.1), for calls built in code.
WIRE_ORDER: Final = (
    "sid", "date_created", "date_updated", "parent_call_sid", "account_sid", "to",
    "formatted_to", "to_formatted", "from", "formatted_from", "from_formatted",
    "phone_number_sid", "status", "start_time", "end_time", "duration", "price",
    "price_unit", "direction", "answered_by", "api_version", "forwarded_from",
    "caller_name", "uri", "subresource_uris", "annotation", "group_sid", "audio_in_mos",
    "sip_result_code", "audio_rtt_avg", "audio_rtt_min", "audio_rtt_max",
    "audio_out_jitter_min", "audio_out_jitter_max", "audio_out_jitter_avg", "audio_out_lost",
)  # fmt: skip
#: The keys the service sends today, in its order (the rest are the audio keys).
SERVICE_KEYS: Final = WIRE_ORDER[:29]
KNOWN_KEYS: Final = frozenset(WIRE_ORDER)
#: The attribute of :class:`~signalwire_calls.Call` that holds each key.
ATTRIBUTE_OF: Final = {key: ("from_" if key == "from" else key) for key in WIRE_ORDER}
DATE_KEYS: Final = ("date_created", "date_updated", "start_time", "end_time")
#: The ``audio_rtt_*``/``audio_out_*`` keys: never seen in a real response so far.
AUDIO_KEYS: Final = (
    "audio_rtt_avg", "audio_rtt_min", "audio_rtt_max", "audio_out_jitter_min",
    "audio_out_jitter_max", "audio_out_jitter_avg", "audio_out_lost",
)  # fmt: skip
SUBRESOURCE_ORDER: Final = ["notifications", "recordings"]
#: API strings to enum members; a value missing here stays a plain ``str``.
STATUSES: Final[dict[str, CallStatus]] = {m.value: m for m in CallStatus}
DIRECTIONS: Final[dict[str, CallDirection]] = {m.value: m for m in CallDirection}
