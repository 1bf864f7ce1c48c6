"""The pure mapping from (status, body) to the exception tree."""

from __future__ import annotations

import pickle

import pytest
import signalwire_calls as swc
from signalwire_calls._errors import error_from_response

COMPAT = (
    b'{"code": 20404, "message": "The requested resource was not found", '
    b'"more_info": "https://signalwire.com/docs/compatibility-api/rest/error-codes", "status": 404}'
)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, swc.APIError),
        (401, swc.AuthenticationError),
        (403, swc.PermissionDeniedError),
        (404, swc.NotFoundError),
        (408, swc.APIError),
        (409, swc.APIError),
        (422, swc.APIError),
        (429, swc.RateLimitedError),
        (500, swc.ServerError),
        (502, swc.ServerError),
        (503, swc.ServerError),
        (504, swc.ServerError),
        (599, swc.ServerError),
        (302, swc.APIError),
    ],
)
def test_status_maps_to_class(status, cls):
    """Each status maps to its documented exception class, all under SignalWireError."""
    err = error_from_response(status, b"", url="https://x/api")
    assert type(err) is cls
    assert isinstance(err, swc.SignalWireError)
    assert err.status == status


def test_compat_body_fields():
    """The standard compat body gives code, message and more_info."""
    err = error_from_response(404, COMPAT, url="https://x/Calls/1")
    assert (err.code, err.message) == (20404, "The requested resource was not found")
    assert err.more_info == "https://signalwire.com/docs/compatibility-api/rest/error-codes"
    assert "20404" in str(err)
    assert "GET https://x/Calls/1" in str(err)


def test_errors_array_with_string_code():
    """The errors-array shape (string code) is read, and the code becomes an int."""
    body = b'{"errors": [{"code": "30010", "message": "Max price", "more_info": "https://d"}]}'
    err = error_from_response(400, body)
    assert (err.code, err.message, err.more_info) == (30010, "Max price", "https://d")


def test_errors_string_array():
    """A list of strings is joined into the message."""
    err = error_from_response(422, b'{"errors": ["To is invalid", "From is invalid"]}')
    assert err.message == "To is invalid; From is invalid"
    assert err.code is None


def test_error_key_shape():
    """The platform's {"error": "Not Found"} shape gives its text."""
    assert error_from_response(404, b'{"error": "Not Found"}').message == "Not Found"


def test_html_body_becomes_snippet():
    """A proxy's HTML page becomes a short, whitespace-folded snippet, never a crash."""
    html = b"<html>\n<body>  <h1>502 Bad Gateway</h1>" + b"x" * 5000 + b"</body></html>"
    err = error_from_response(502, html)
    assert err.message.startswith("<html> <body> <h1>502 Bad Gateway</h1>")
    assert len(err.message) == 200


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe\x00", b"null", b"[]", b"123", b'{"code": true}', b'{"errors": []}', b"{"],
)
def test_odd_bodies_never_raise(body):
    """Empty, binary, non-object and half-written bodies still map to an APIError."""
    err = error_from_response(500, body)
    assert isinstance(err, swc.ServerError)
    assert err.code is None


def test_rate_limited_carries_retry_after():
    """429 keeps the parsed Retry-After hint."""
    err = error_from_response(429, b"{}", retry_after=12.5)
    assert isinstance(err, swc.RateLimitedError)
    assert err.retry_after == 12.5


def test_api_errors_pickle():
    """Errors survive pickling (for multiprocessing users) with all attributes."""
    err = error_from_response(429, COMPAT, url="https://x", retry_after=3.0)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.status, copy.code, copy.retry_after, str(copy)) == (
        swc.RateLimitedError,
        429,
        20404,
        3.0,
        str(err),
    )


def test_config_error_is_value_error():
    """ConfigError is also a ValueError, so generic validation handlers catch it."""
    assert issubclass(swc.ConfigError, ValueError)
    assert issubclass(swc.RequestTimeoutError, swc.TransportError)


def test_bulk_lookup_error_summarises():
    """BulkLookupError counts failures and names a few."""
    failed = {f"sid{i}": swc.ServerError(500) for i in range(5)}
    err = swc.BulkLookupError(failed)
    assert str(err).startswith("5 lookup(s) failed: sid0: HTTP 500")
    assert "(and 2 more)" in str(err)
    assert err.failed == failed
