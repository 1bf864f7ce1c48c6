"""CallsClient: configuration, lifecycle and get_call against a loopback server."""

from __future__ import annotations

import base64
import logging
import ssl

import aiohttp
import pytest
import signalwire_calls as swc
from yarl import URL

from conftest import PROJECT, SID, TOKEN, Reply, sample

CALL = sample("call_real_2024.json")


def client_for(scripted, **kwargs):
    return swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url, **kwargs)


# ------------------------------------------------------------------ settings


def test_default_base_url_from_space():
    """A space gives https://{space}/api/laml/2010-04-01."""
    client = swc.CallsClient(PROJECT, TOKEN, space_url="example.signalwire.com")
    assert client.base_url == "https://example.signalwire.com/api/laml/2010-04-01"


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ("example", "https://example.signalwire.com/api/laml/2010-04-01"),
        ("https://example.signalwire.com/", "https://example.signalwire.com/api/laml/2010-04-01"),
        ("https://example.signalwire.com/api/laml/2010-04-01", "https://example.signalwire.com/api/laml/2010-04-01"),
    ],
)  # fmt: skip
def test_space_url_forms(space, expected):
    """A bare space name, a URL, or a URL with the prefix all give the same base."""
    assert expected == swc.CallsClient(PROJECT, TOKEN, space_url=space).base_url


def test_base_url_overrides_space():
    """base_url wins over space_url."""
    client = swc.CallsClient(
        PROJECT, TOKEN, space_url="example.signalwire.com", base_url="https://proxy.example/x/"
    )
    assert client.base_url == "https://proxy.example/x"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"project_id": ""}, "project_id is empty.*SIGNALWIRE_PROJECT_ID"),
        ({"api_token": "  "}, "api_token is empty.*SIGNALWIRE_API_TOKEN"),
        ({"api_token": None}, "api_token is empty"),
        ({"space_url": None}, "SIGNALWIRE_SPACE_URL"),
        ({"base_url": "http://api.example.com/x"}, "Refusing plain http://"),
        ({"base_url": "ftp://x/y"}, "absolute https://"),
        ({"base_url": "https://user:pw@x.example/y"}, "must not contain credentials"),
        ({"base_url": "https://x.example/y?a=1"}, "query"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": 2.5}, "max_connections"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"retry": {"attempts": 3}}, "retry must be a RetryPolicy"),
        ({"ssl": False}, "ssl must be an ssl.SSLContext"),
        ({"project_id": "a:b"}, "':'"),
        ({"api_token": "tok\nen"}, "control characters"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, match):
    """Each bad option is a ConfigError naming it, raised before any I/O."""
    options = {"project_id": PROJECT, "api_token": TOKEN, "space_url": "example.signalwire.com"}
    options.update(kwargs)
    with pytest.raises(swc.ConfigError, match=match) as info:
        swc.CallsClient(**options)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.8.9.10"])
def test_plain_http_allowed_to_loopback(host):
    """Plain http is fine to loopback hosts (emulators, tests)."""
    client = swc.CallsClient(PROJECT, TOKEN, base_url=f"http://{host}:8080/api")
    assert client.base_url.startswith("http://")


def test_plain_http_opt_in():
    """allow_insecure_http=True permits plain http to another host."""
    client = swc.CallsClient(
        PROJECT, TOKEN, base_url="http://proxy.internal/api", allow_insecure_http=True
    )
    assert client.base_url == "http://proxy.internal/api"


def test_from_env_reads_both_spellings(monkeypatch):
    """from_env takes the documented variables and the common short spellings."""
    for name in (
        "SIGNALWIRE_SPACE_URL",
        "SIGNALWIRE_PROJECT_ID",
        "SIGNALWIRE_API_TOKEN",
        "SIGNALWIRE_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNALWIRE_SPACE", "acme.signalwire.com")
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", PROJECT)
    monkeypatch.setenv("SIGNALWIRE_TOKEN", TOKEN)
    client = swc.CallsClient.from_env()
    assert (client.project_id, client.base_url) == (
        PROJECT,
        "https://acme.signalwire.com/api/laml/2010-04-01",
    )
    assert swc.CallsClient.from_env(space_url="other.signalwire.com").base_url.startswith(
        "https://other."
    )


def test_from_env_missing_names_the_variable(monkeypatch):
    """A missing variable is a ConfigError that says which variable to set."""
    for name in (
        "SIGNALWIRE_PROJECT_ID",
        "SIGNALWIRE_PROJECT",
        "SIGNALWIRE_API_TOKEN",
        "SIGNALWIRE_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNALWIRE_SPACE_URL", "acme.signalwire.com")
    with pytest.raises(swc.ConfigError, match="SIGNALWIRE_PROJECT_ID"):
        swc.CallsClient.from_env()


def test_repr_never_shows_token():
    """The client's repr shows the project and base URL, never the token."""
    client = swc.CallsClient(PROJECT, TOKEN, space_url="example.signalwire.com")
    basic = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
    assert PROJECT in repr(client)
    assert TOKEN not in repr(client)
    assert basic not in repr(client)
    assert TOKEN not in repr(client._settings)


# ------------------------------------------------------------------ get_call


async def test_get_call_sends_auth_and_returns_typed_call(scripted):
    """get_call sends Basic auth to /Accounts/{project}/Calls/{sid} and types the answer."""
    scripted.script = [Reply(200, CALL)]
    async with client_for(scripted) as client:
        call = await client.get_call(SID)
    assert call.to_dict() == CALL
    request = scripted.hits[0]
    assert request.path == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{SID}"
    assert request.method == "GET"
    expected = "Basic " + base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == expected
    assert request.headers["User-Agent"].startswith("signalwire-calls/")
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Host"] == URL(scripted.base_url).raw_authority


@pytest.mark.parametrize(
    "sid",
    ["", "CA1234", "82e7850d054e40678c4f6568acd96575", "../../etc/passwd",
     "82e7850d-054e-4067-8c4f-6568acd96575/../x", "82e7850d-054e-4067-8c4f-6568acd96575?x=1",
     "{82e7850d-054e-4067-8c4f-6568acd96575}", None, 5],
)  # fmt: skip
async def test_bad_sid_is_value_error_without_request(scripted, sid):
    """A SID that is not a UUID is a ValueError and sends no request."""
    async with client_for(scripted) as client:
        with pytest.raises(ValueError, match="Invalid call SID"):
            await client.get_call(sid)
    assert scripted.hits == []


async def test_not_found_is_not_found_error(scripted):
    """A 404 with the compat body is a NotFoundError with code 20404."""
    scripted.script = [Reply(404, sample("error_404.json"))]
    async with client_for(scripted) as client:
        with pytest.raises(swc.NotFoundError) as info:
            await client.get_call(SID)
    assert info.value.code == 20404
    assert SID not in info.value.url or info.value.url.endswith(SID)


async def test_auth_failure_never_leaks_token(scripted, caplog):
    """A 401 is an AuthenticationError whose message and logs hold no secret."""
    scripted.script = [Reply(401, sample("error_401.json"))]
    with caplog.at_level(logging.DEBUG):
        async with client_for(scripted) as client:
            with pytest.raises(swc.AuthenticationError) as info:
                await client.get_call(SID)
    basic = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
    for text in (str(info.value), repr(info.value), caplog.text):
        assert TOKEN not in text
        assert basic not in text
    assert info.value.code == 20003


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (Reply(200, "<html>Gateway</html>", content_type="text/html"), "expected a JSON body, got text/html"),
        (Reply(200, b""), "expected a JSON body"),
        (Reply(200, b"[1, 2]"), "Expected a JSON object"),
        (Reply(200, {"message": "hi"}), "no string 'sid'"),
        (Reply(200, dict(CALL, duration="long")), r"expected an integer.*\$\.duration"),
        (Reply(200, dict(CALL, sid="11111111-2222-3333-4444-555555555555")), "API returned call"),
    ],
)  # fmt: skip
async def test_malformed_success_bodies_are_decode_errors(scripted, reply, match):
    """A 2xx body that is not a valid call is a DecodeError saying why."""
    scripted.script = [reply]
    async with client_for(scripted) as client:
        with pytest.raises(swc.DecodeError, match=match):
            await client.get_call(SID)


async def test_redirects_are_not_followed(scripted):
    """A redirect is an APIError; the Location is never requested."""
    scripted.script = [Reply(302, b"", headers={"Location": "https://evil.example/steal"})]
    async with client_for(scripted) as client:
        with pytest.raises(swc.APIError) as info:
            await client.get_call(SID)
    assert info.value.status == 302
    assert len(scripted.hits) == 1


async def test_oversized_body_refused_by_content_length(scripted):
    """A body above max_body_size is refused from its Content-Length."""
    scripted.script = [Reply(200, dict(CALL, pad="x" * 5000))]
    async with client_for(scripted, max_body_size=4096) as client:
        with pytest.raises(swc.DecodeError, match="Refusing a response body"):
            await client.get_call(SID)


async def test_oversized_chunked_body_refused(scripted):
    """A chunked body (no Content-Length) is read only up to the cap."""
    scripted.script = [Reply(200, b" " * 100_000, kind="chunked")]
    async with client_for(scripted, max_body_size=8192) as client:
        with pytest.raises(swc.DecodeError, match="more than 8192 bytes"):
            await client.get_call(SID)


async def test_chunked_body_within_cap_is_read(scripted):
    """A chunked call body under the cap is read whole."""
    scripted.script = [Reply(200, CALL, kind="chunked")]
    async with client_for(scripted) as client:
        assert (await client.get_call(SID)).to_dict() == CALL


async def test_connections_are_reused(scripted):
    """Sequential lookups reuse one keep-alive connection."""
    scripted.default = lambda _: Reply(200, CALL)
    async with client_for(scripted) as client:
        for _ in range(20):
            await client.get_call(SID)
    assert len(scripted.hits) == 20
    assert len(set(scripted.peers)) == 1


# ----------------------------------------------------------------- lifecycle


async def test_aclose_is_idempotent_and_closes_session(scripted):
    """Aclose closes the owned session and may be called twice."""
    scripted.script = [Reply(200, CALL)]
    client = client_for(scripted)
    await client.get_call(SID)
    session = client._requester._session
    await client.aclose()
    await client.aclose()
    assert session.closed
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_call(SID)


async def test_caller_session_is_used_and_never_closed(scripted):
    """A caller-owned session is used (with retries) and left open."""
    scripted.script = [Reply(503, {}), Reply(200, CALL)]
    async with aiohttp.ClientSession() as session:
        retry = swc.RetryPolicy(wait_initial=0, wait_jitter=0)
        async with client_for(scripted, session=session, retry=retry) as client:
            call = await client.get_call(SID)
        assert not session.closed
    assert call.sid == SID
    assert len(scripted.hits) == 2


async def test_unclosed_client_warns():
    """An owned session garbage-collected open gives a ResourceWarning."""
    client = swc.CallsClient(PROJECT, TOKEN, base_url="http://127.0.0.1:9/api")
    await client.__aenter__()
    session = client._requester._session
    with pytest.warns(ResourceWarning, match="Unclosed <CallsClient"):
        client.__del__()
    await session.close()


async def test_custom_ssl_context_accepted(scripted):
    """A custom SSLContext is accepted (it is not used for plain-http loopback)."""
    scripted.script = [Reply(200, CALL)]
    context = ssl.create_default_context()
    async with client_for(scripted, ssl=context) as client:
        assert (await client.get_call(SID)).sid == SID


async def test_connection_refused_is_transport_error():
    """Nothing listening: a TransportError after the policy's attempts."""
    retry = swc.RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0)
    async with swc.CallsClient(
        PROJECT, TOKEN, base_url="http://127.0.0.1:9/api", retry=retry
    ) as client:
        with pytest.raises(swc.TransportError, match="2 attempt"):
            await client.get_call(SID)


async def test_rate_limit_spaces_requests(scripted):
    """With rate_limit=N, no one-second window holds more than N requests."""
    pytest.importorskip("aiolimiter", reason="rate_limit needs the ratelimit extra")
    import time

    stamps = []

    def stamp(_):
        stamps.append(time.monotonic())
        return Reply(200, CALL)

    scripted.default = stamp
    async with client_for(scripted, rate_limit=20) as client:
        for _ in range(25):
            await client.get_call(SID)
    window = [t for t in stamps if t < stamps[0] + 1.0]
    assert len(stamps) == 25
    assert len(window) <= 20
