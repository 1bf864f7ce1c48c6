"""The stdlib decoder (the default install) gives exactly what ``json.loads`` gives.

Its fast route (``raw_decode`` on the UTF-8 text) must never change a result or
turn an error into a value: every body it does not take is left to ``json.loads``.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from signalwire_calls import _json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
SPACE = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u3000", max_size=3)


def outcome(decode, data):
    """What ``decode(data)`` gives: ``("value", repr)`` or ``("error", ValueError)``."""
    try:
        return "value", repr(decode(data))
    except ValueError:
        return "error", ValueError


@settings(max_examples=300)
@given(value=JSON_VALUES, before=SPACE, after=SPACE, ascii_only=st.booleans())
def test_documents_decode_as_json_loads_does(value, before, after, ascii_only):
    """Any document, with any whitespace (JSON's or not) around it, as bytes and as text."""
    text = before + json.dumps(value, ensure_ascii=ascii_only) + after
    for data in (text, text.encode()):
        assert outcome(json.loads, data) == outcome(_json._stdlib_loads, data)


@settings(max_examples=300)
@given(data=st.binary(max_size=40))
def test_any_bytes_decode_or_fail_as_json_loads_does(data):
    """Arbitrary bytes: the same value, or a ValueError (never another exception)."""
    assert outcome(json.loads, data) == outcome(_json._stdlib_loads, data)


@pytest.mark.parametrize(
    "data",
    [
        b'\xef\xbb\xbf{"sid": "CA1"}',  # a UTF-8 BOM: json.loads accepts it from bytes
        '{"sid": "CA1"}'.encode("utf-16"),  # UTF-16 with its BOM
        '{"sid": "CA1"}'.encode("utf-32-le"),
        b'{"sid": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate: json.loads passes it
        b'  {"sid": "CA1"}\n',  # leading whitespace
        b'{"sid": "CA1"}\n\r\t ',  # trailing JSON whitespace
        b'{"sid": "CA1"}\x0b',  # trailing whitespace that JSON does not allow
        b'{"sid": "CA1"} {}',  # two documents
        b'{"sid": NaN}',
        b"",
        bytearray(b'{"sid": "CA1"}'),
    ],
)
def test_every_other_encoding_and_form_is_left_to_json_loads(data):
    """BOMs, UTF-16/32, surrogates, surrounding space, extra data: json.loads decides."""
    assert outcome(json.loads, data) == outcome(_json._stdlib_loads, data)


def test_the_usual_body_decodes_to_its_object():
    body = b'{"sid": "CA1", "duration": 7, "price": -0.0085, "subresource_uris": {}}'
    assert {"sid": "CA1", "duration": 7, "price": -0.0085, "subresource_uris": {}} == (
        _json._stdlib_loads(body)
    )
