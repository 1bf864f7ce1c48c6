"""The public value types' runtime side: the Literal names, the CallResult union, UnknownValue."""

from __future__ import annotations

import typing

import signalwire_calls as swc
from signalwire_calls._models import build_call_result


def test_the_literal_names_are_exactly_the_enum_values():
    """CallStatusName and CallDirectionName list the enums' values, no more, no fewer."""
    assert [s.value for s in swc.CallStatus] == list(typing.get_args(swc.CallStatusName))
    assert [d.value for d in swc.CallDirection] == list(typing.get_args(swc.CallDirectionName))


def test_a_call_result_is_either_kind_and_isinstance_works():
    """Both kinds are CallResults; each answers ok, outcome, call and error consistently."""
    missing = build_call_result("sid", None, swc.NotFoundError(404, message="gone"))
    invalid = build_call_result("sid", None, ValueError("not a UUID"))

    assert isinstance(missing, swc.CallResult)
    assert (False, "missing", None) == (missing.ok, missing.outcome, missing.call)
    assert (False, "failed") == (invalid.ok, invalid.outcome)


def test_an_error_outside_the_contract_is_still_a_signalwire_error():
    """A lookup that failed with, say, a RuntimeError carries a SignalWireError caused by it."""
    cause = RuntimeError("This CallsClient is closed")
    result = build_call_result("sid", None, cause)

    assert isinstance(result.error, swc.SignalWireError)
    assert cause is result.error.__cause__
    assert "failed" == result.outcome


def test_unknown_value_is_a_str_equal_to_its_text():
    """An UnknownValue compares, hashes and formats as its text, with a telling repr."""
    value = swc.UnknownValue("transferring")

    assert "transferring" == value
    assert {"transferring"} == {value}
    assert "transferring" == f"{value}"
    assert "UnknownValue('transferring')" == repr(value)
    assert not isinstance(value, swc.CallStatus)
