"""Calls as Apache Arrow tables and Parquet files (the ``parquet`` extra: pyarrow).

:func:`calls_to_table` turns :class:`~signalwire_calls.Call` records into a
:class:`pyarrow.Table` of :data:`CALL_SCHEMA`: one column per wire key, in the API's
order and with its names (``from``, not ``from_``), typed so that pandas, polars
and DuckDB read a Parquet file of it without any conversion:

- ``date_created``, ``date_updated``, ``start_time``, ``end_time``: aware UTC
  timestamps (``timestamp[us, tz=UTC]``);
- ``price``: ``decimal128(18, 8)``, exact as the API sent it;
- ``duration``: ``int64``; the audio metrics (``audio_in_mos``, ``audio_rtt_*``,
  ``audio_out_*``): ``float64``;
- ``status``, ``direction``, ``answered_by``, ``price_unit``, ``api_version``:
  dictionary-encoded strings (a value the library does not know is kept as is);
- ``subresource_uris``: a struct of ``notifications`` and ``recordings``;
- ``extra``: the keys of the response that this version does not model, as a JSON
  object in a string (null when there are none), so nothing the API sent is lost.

A key the response did not have is null, like a JSON ``null``.

Importing this module needs pyarrow (``pip install 'signalwire-calls[parquet]'``);
importing :mod:`signalwire_calls` never imports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as err:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "signalwire_calls.arrow needs pyarrow: pip install 'signalwire-calls[parquet]'"
    ) from err

from signalwire_calls import Call

__all__ = ["CALL_SCHEMA", "PRICE_TYPE", "calls_to_table", "write_parquet"]

#: The type of ``price``: 18 digits, 8 after the point (prices have 4 to 5 today).
PRICE_TYPE: Final = pa.decimal128(18, 8)
_TIME: Final = pa.timestamp("us", tz="UTC")
_ENUM: Final = pa.dictionary(pa.int32(), pa.string())
_URIS: Final = pa.struct([("notifications", pa.string()), ("recordings", pa.string())])
_STR: Final = pa.string()
_FLOAT: Final = pa.float64()

#: The columns, the wire keys in the API's order and then ``extra``.
CALL_SCHEMA: Final = pa.schema(
    [
        ("sid", _STR), ("date_created", _TIME), ("date_updated", _TIME),
        ("parent_call_sid", _STR), ("account_sid", _STR), ("to", _STR),
        ("formatted_to", _STR), ("to_formatted", _STR), ("from", _STR),
        ("formatted_from", _STR), ("from_formatted", _STR), ("phone_number_sid", _STR),
        ("status", _ENUM), ("start_time", _TIME), ("end_time", _TIME),
        ("duration", pa.int64()), ("price", PRICE_TYPE), ("price_unit", _ENUM),
        ("direction", _ENUM), ("answered_by", _ENUM), ("api_version", _ENUM),
        ("forwarded_from", _STR), ("caller_name", _STR), ("uri", _STR),
        ("subresource_uris", _URIS), ("annotation", _STR), ("group_sid", _STR),
        ("audio_in_mos", _FLOAT), ("sip_result_code", _STR), ("audio_rtt_avg", _FLOAT),
        ("audio_rtt_min", _FLOAT), ("audio_rtt_max", _FLOAT), ("audio_out_jitter_min", _FLOAT),
        ("audio_out_jitter_max", _FLOAT), ("audio_out_jitter_avg", _FLOAT),
        ("audio_out_lost", _FLOAT), ("extra", _STR),
    ],
    metadata={"signalwire_calls": "Call records, Compatibility API (Calls)"},
)  # fmt: skip

_PRICE_SCALE: Final = 8


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _uris(call: Call) -> dict[str, str | None] | None:
    uris = call.subresource_uris
    if uris is None:
        return None
    return {"notifications": uris.notifications, "recordings": uris.recordings}


def _extra(call: Call) -> str | None:
    extra = call.extra
    if not extra:
        return None
    return json.dumps(dict(extra), ensure_ascii=False, separators=(",", ":"))


def _price(call: Call) -> Decimal | None:
    price = call.price
    if price is None:
        return None
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_PRICE_SCALE:
        rounded = price.quantize(Decimal(1).scaleb(-_PRICE_SCALE))
        if rounded != price:
            raise ValueError(
                f"call {call.sid}: price {price} has more than {_PRICE_SCALE} decimal places "
                f"(the Arrow column is {PRICE_TYPE})"
            )
        return rounded
    return price


_ATTRIBUTE: Final = {"from": "from_"}
#: How each column is read from a call (default: the attribute of the same name).
_GETTERS: Final[dict[str, Callable[[Call], Any]]] = {
    "status": lambda call: _text(call.status),
    "direction": lambda call: _text(call.direction),
    "price": _price,
    "subresource_uris": _uris,
    "extra": _extra,
}


def calls_to_table(calls: Iterable[Call]) -> pa.Table:
    """Return ``calls`` as an Arrow table of :data:`CALL_SCHEMA`, one row per call, in order.

    Raises:
        ValueError: A price has more decimal places than the column keeps (the
            message names the call).
    """
    rows = list(calls)
    columns = []
    for field in CALL_SCHEMA:
        name = field.name
        get = _GETTERS.get(name)
        if get is None:
            attribute = _ATTRIBUTE.get(name, name)
            values = [getattr(call, attribute) for call in rows]
        else:
            values = [get(call) for call in rows]
        if pa.types.is_dictionary(field.type):
            columns.append(pa.array(values, type=_STR).dictionary_encode())
        else:
            columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=CALL_SCHEMA)


def write_parquet(calls: Iterable[Call], path: str | Path, *, row_group_size: int = 10_000) -> int:
    """Write ``calls`` to a Parquet file of :data:`CALL_SCHEMA`; return how many were written.

    The file is written in row groups of ``row_group_size`` calls, so memory stays
    bounded whatever the number of calls. A partly written file is not a valid
    Parquet file: write to a temporary name and rename it if it must be atomic.
    """
    if (
        isinstance(row_group_size, bool)
        or not isinstance(row_group_size, int)
        or row_group_size < 1
    ):
        raise ValueError(f"row_group_size must be a positive integer, got {row_group_size!r}")
    written = 0
    with pq.ParquetWriter(str(path), CALL_SCHEMA) as writer:
        batch: list[Call] = []
        for call in calls:
            batch.append(call)
            if len(batch) == row_group_size:
                writer.write_table(calls_to_table(batch))
                written += len(batch)
                batch = []
        if batch or not written:
            writer.write_table(calls_to_table(batch))
            written += len(batch)
    return written
