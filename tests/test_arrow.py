"""Calls as Arrow tables and Parquet files: the documented schema, row for row equal to the wire."""

from __future__ import annotations

import json
from decimal import Decimal
from email.utils import parsedate_to_datetime

import pytest

pa = pytest.importorskip("pyarrow", reason="Arrow and Parquet need the parquet extra (pyarrow)")
import pyarrow.parquet as pq  # noqa: E402
import signalwire_calls as swc  # noqa: E402
from signalwire_calls.arrow import CALL_SCHEMA, PRICE_TYPE, calls_to_table, write_parquet  # noqa: E402
from signalwire_calls.testing import FakeSignalWire  # noqa: E402

DATES = ("date_created", "date_updated", "start_time", "end_time")
ENUMS = ("status", "direction", "answered_by", "price_unit", "api_version")
FLOATS = (
    "audio_in_mos", "audio_rtt_avg", "audio_rtt_min", "audio_rtt_max", "audio_out_jitter_min",
    "audio_out_jitter_max", "audio_out_jitter_avg", "audio_out_lost",
)  # fmt: skip


def wire_calls(count: int = 80) -> list[dict]:
    """Realistic wire dicts from the emulator's generator, plus keys this version does not know."""
    fake = FakeSignalWire(calls=count, seed=13)
    fake.add_call(status="mystery-status", surprise={"nested": [1, "two"]})
    fake.add_call(omit=("audio_in_mos", "sip_result_code"), price=-0.00750)
    return list(fake.calls.values())


def expected_row(wire: dict) -> dict:
    """What a row must hold, derived from the wire dict alone (not through the library)."""
    row = {}
    for field in CALL_SCHEMA:
        name = field.name
        value = wire.get(name)
        if name == "extra":
            unknown = {k: v for k, v in wire.items() if k not in CALL_SCHEMA.names}
            value = json.loads(json.dumps(unknown)) if unknown else None
        elif name in DATES and value is not None:
            value = parsedate_to_datetime(value)
        elif name == "price" and value is not None:
            value = Decimal(str(value))
        elif name in FLOATS and value is not None:
            value = float(value)
        row[name] = value
    return row


def actual_row(row: dict) -> dict:
    out = dict(row)
    if out["extra"] is not None:
        out["extra"] = json.loads(out["extra"])
    return out


def test_the_schema_has_the_documented_types():
    """Timestamps are aware UTC, price decimal, duration int64, enums dictionary-encoded."""
    assert all(CALL_SCHEMA.field(n).type == pa.timestamp("us", tz="UTC") for n in DATES)
    assert PRICE_TYPE == CALL_SCHEMA.field("price").type == pa.decimal128(18, 8)
    assert pa.int64() == CALL_SCHEMA.field("duration").type
    assert all(pa.types.is_dictionary(CALL_SCHEMA.field(n).type) for n in ENUMS)
    assert all(CALL_SCHEMA.field(n).type == pa.float64() for n in FLOATS)
    assert pa.string() == CALL_SCHEMA.field("extra").type
    assert ["sid", "date_created"] == CALL_SCHEMA.names[:2]
    assert "from" in CALL_SCHEMA.names


def test_calls_to_table_holds_what_the_api_sent_row_for_row():
    """Each row equals its wire dict: dates, exact prices, unknown statuses and keys included."""
    wires = wire_calls()

    table = calls_to_table(swc.Call.from_dict(w) for w in wires)

    assert CALL_SCHEMA == table.schema
    assert [expected_row(w) for w in wires] == [actual_row(r) for r in table.to_pylist()]


def test_a_parquet_file_reads_back_into_the_schema_unchanged(tmp_path):
    """write_parquet, then pyarrow: the same schema and rows, in row groups."""
    wires = wire_calls(50)
    path = tmp_path / "calls.parquet"

    written = write_parquet((swc.Call.from_dict(w) for w in wires), path, row_group_size=20)
    back = pq.read_table(path)

    assert len(wires) == written
    assert 3 == pq.ParquetFile(path).num_row_groups
    assert CALL_SCHEMA.remove_metadata() == back.schema.remove_metadata()
    assert [expected_row(w) for w in wires] == [actual_row(r) for r in back.to_pylist()]


def test_an_empty_parquet_file_still_has_the_schema(tmp_path):
    """No calls: a valid file with every column and no rows."""
    write_parquet([], tmp_path / "none.parquet")

    assert CALL_SCHEMA.names == pq.read_table(tmp_path / "none.parquet").schema.names


def test_a_price_finer_than_the_column_is_refused_naming_the_call():
    """A price with more than 8 decimal places would be rounded: refused with the SID."""
    wire = wire_calls(1)[0]
    call = swc.Call.from_dict({**wire, "price": 0.123456789})

    with pytest.raises(ValueError, match=f"call {wire['sid']}: price 0.123456789"):
        calls_to_table([call])


def test_pandas_polars_and_duckdb_read_the_file_without_conversion(tmp_path):
    """The three readers see typed columns: aware timestamps, decimals, integers, strings."""
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    wires = wire_calls(30)
    path = tmp_path / "calls.parquet"
    write_parquet([swc.Call.from_dict(w) for w in wires], path)

    frame = pd.read_parquet(path)
    assert "UTC" == str(frame["start_time"].dt.tz)
    assert "int64" == str(frame["duration"].dtype)
    assert {w["status"] for w in wires} == set(frame["status"].astype(str))

    pl = pytest.importorskip("polars", reason="polars is not installed")
    schema = pl.read_parquet(path).schema
    assert pl.Datetime("us", "UTC") == schema["start_time"]
    assert pl.Decimal(18, 8) == schema["price"]

    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed")
    total = duckdb.sql(f"select sum(price) from '{path}'").fetchall()[0][0]  # noqa: S608 - our tmp path
    assert sum(Decimal(str(w["price"])) for w in wires if w["price"] is not None) == total
