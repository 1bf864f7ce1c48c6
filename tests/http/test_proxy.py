"""Forward proxies: ``proxy=`` and ``trust_env=``, through a real loopback proxy that counts."""

from __future__ import annotations

import asyncio
import base64
import traceback

import aiohttp
import pytest
import signalwire_calls as swc
from aiohttp import web
from signalwire_calls.testing import FakeSignalWire

from forward_proxy import ForwardProxy

PROXY_USER, PROXY_PASSWORD = "proxy-user", "proxy-s3cret-pw"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")


@pytest.fixture
async def proxy():
    forward = ForwardProxy()
    await forward.start()
    yield forward
    await forward.close()


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=3, seed=3) as emulator:
        yield emulator


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_requests_go_through_the_configured_proxy(fake, proxy, clean_env):
    """With proxy=, every request reaches the API through the proxy, with the API's auth."""
    sid = fake.call_sids[0]
    async with fake.client(proxy=proxy.url) as client:
        call = await client.get_call(sid)
        assert [sid] == [c.sid async for c in client.iter_calls(limit=1)]
    assert sid == call.sid
    assert 2 == len(proxy.seen)
    assert f"{fake.base_url}/Accounts/{fake.project_id}/Calls/{sid}" == proxy.seen[0]["target"]
    assert 2 == len(fake.requests)
    expected_auth = (
        "Basic " + base64.b64encode(f"{fake.project_id}:{fake.api_token}".encode()).decode()
    )
    assert expected_auth == proxy.seen[0]["authorization"]
    assert proxy.seen[0]["proxy_authorization"] is None


async def test_proxy_credentials_go_only_to_the_proxy(fake, proxy, clean_env):
    """Credentials of the proxy URL are sent as Proxy-Authorization, never as Authorization."""
    url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    async with fake.client(proxy=url) as client:
        await client.get_call(fake.call_sids[0])
        assert f"http://127.0.0.1:{proxy.port}" == client.proxy
        assert PROXY_PASSWORD not in repr(client)
    expected = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    assert expected == proxy.seen[0]["proxy_authorization"]
    assert PROXY_PASSWORD not in str(proxy.seen[0]["authorization"])
    assert 1 == fake.attempts(fake.call_sids[0])


async def test_no_request_touches_a_proxy_unless_told(fake, proxy, clean_env):
    """Without proxy= and trust_env, a proxy in the environment is ignored."""
    for name in PROXY_VARIABLES:
        clean_env.setenv(name, proxy.url)
    async with fake.client() as client:
        await client.get_call(fake.call_sids[0])
    async with fake.client(trust_env=False) as client:
        await client.get_call(fake.call_sids[0])
    assert [] == proxy.seen
    assert 2 == fake.attempts(fake.call_sids[0])


async def test_trust_env_uses_the_environment_proxy(fake, proxy, clean_env):
    """trust_env=True sends requests to an http:// API through HTTP_PROXY."""
    clean_env.setenv("HTTP_PROXY", proxy.url)
    async with fake.client(trust_env=True) as client:
        assert proxy.url == client.proxy
        await client.get_call(fake.call_sids[0])
    assert 1 == len(proxy.seen)


async def test_trust_env_picks_the_proxy_of_the_api_scheme(fake, proxy, clean_env):
    """HTTPS_PROXY is for https:// APIs: it does not proxy the http:// emulator."""
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    async with fake.client(trust_env=True) as client:
        assert client.proxy is None
        await client.get_call(fake.call_sids[0])
    assert [] == proxy.seen
    https = swc.CallsClient("p", "t", space_url="example", trust_env=True)
    assert proxy.url == https.proxy


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1:1,127.0.0.1", "*"])
async def test_no_proxy_exempts_the_api_host(fake, proxy, clean_env, no_proxy):
    """NO_PROXY matching the API's host bypasses the environment's proxy."""
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", no_proxy)
    async with fake.client(trust_env=True) as client:
        assert client.proxy is None
        await client.get_call(fake.call_sids[0])
    assert [] == proxy.seen


async def test_an_explicit_proxy_wins_over_the_environment(fake, proxy, clean_env):
    """proxy= is used even when trust_env and NO_PROXY say otherwise."""
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    clean_env.setenv("NO_PROXY", "*")
    async with fake.client(proxy=proxy.url, trust_env=True) as client:
        await client.get_call(fake.call_sids[0])
    assert 1 == len(proxy.seen)


async def test_a_callers_session_goes_through_the_proxy_too(fake, proxy, clean_env):
    """proxy= applies per request, so a caller-owned session uses it as well."""
    async with (
        aiohttp.ClientSession() as session,
        fake.client(proxy=proxy.url, session=session) as client,
    ):
        await client.get_call(fake.call_sids[0])
    assert 1 == len(proxy.seen)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://proxy.example:3128", "http:// proxy URL"),
        ("socks5://proxy.example:1080", "http:// proxy URL"),
        ("proxy.example:3128", "http:// proxy URL"),
        ("http://proxy.example:3128/path", "path, query or fragment"),
        ("http://proxy.example:99999", "not a URL"),
        (3128, "must be a URL"),
    ],
)
def test_bad_proxy_urls_are_config_errors_naming_the_option(value, message):
    """A proxy URL that cannot work is a ConfigError that names 'proxy'."""
    with pytest.raises(swc.ConfigError, match=message) as caught:
        swc.CallsClient("p", "t", space_url="example", proxy=value)
    assert str(caught.value).startswith("proxy")


def test_a_bad_environment_proxy_names_the_variable(clean_env):
    """With trust_env, an unusable HTTPS_PROXY is a ConfigError that names the variable."""
    clean_env.setenv("HTTPS_PROXY", f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@proxy:1080")
    with pytest.raises(swc.ConfigError, match="HTTPS_PROXY") as caught:
        swc.CallsClient("p", "t", space_url="example", trust_env=True)
    assert PROXY_PASSWORD not in str(caught.value)


def test_proxy_credentials_are_in_no_config_error():
    """A bad proxy URL with credentials is refused without showing them."""
    with pytest.raises(swc.ConfigError) as caught:
        swc.CallsClient(
            "p", "t", space_url="example", proxy=f"ftp://{PROXY_USER}:{PROXY_PASSWORD}@h:1"
        )
    assert PROXY_PASSWORD not in "".join(traceback.format_exception(caught.value))


async def test_proxy_credentials_are_in_no_transport_error(fake, clean_env, caplog):
    """An unreachable proxy is a TransportError without the proxy's or the API's secrets."""
    caplog.set_level("DEBUG")
    url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:9"
    async with fake.client(proxy=url, retry=swc.RetryPolicy.no_retries()) as client:
        with pytest.raises(swc.TransportError) as caught:
            await client.get_call(fake.call_sids[0])
    shown = "\n".join([repr(caught.value), *traceback.format_exception(caught.value)])
    for secret in (PROXY_PASSWORD, fake.api_token):
        assert secret not in shown
        assert secret not in caplog.text


async def test_a_proxy_that_echoes_its_credentials_leaks_nothing(fake, clean_env):
    """A proxy error body echoing Proxy-Authorization is scrubbed from the APIError."""

    async def refuse(request: web.Request) -> web.Response:
        echoed = f"{request.headers.get('Proxy-Authorization')} {PROXY_PASSWORD}"
        return web.json_response({"message": echoed}, status=502)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with fake.client(proxy=url, retry=swc.RetryPolicy.no_retries()) as client:
            with pytest.raises(swc.ServerError) as caught:
                await client.get_call(fake.call_sids[0])
    finally:
        await runner.cleanup()
    secret = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    shown = "\n".join([repr(caught.value), *traceback.format_exception(caught.value)])
    assert PROXY_PASSWORD not in shown
    assert secret not in shown


async def test_https_tunnel_sends_only_the_proxy_credentials_in_connect(clean_env):
    """The CONNECT to the proxy carries Proxy-Authorization and never the API's token."""
    heads: list[bytes] = []

    async def refuse(reader, writer):
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    token = "PTtoken-that-stays-inside-the-tunnel"
    url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}"
    try:
        client = swc.CallsClient(
            "p", token, space_url="example", proxy=url, retry=swc.RetryPolicy.no_retries()
        )
        async with client:
            with pytest.raises(swc.TransportError) as caught:
                await client.get_call("7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21")
    finally:
        server.close()
        await server.wait_closed()
    head = heads[0].decode()
    assert head.startswith("CONNECT example.signalwire.com:443 ")
    credential = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    assert f"Proxy-Authorization: Basic {credential}" in head
    assert "\nAuthorization:" not in head
    assert base64.b64encode(f"p:{token}".encode()).decode() not in head
    shown = "\n".join([repr(caught.value), *traceback.format_exception(caught.value)])
    assert PROXY_PASSWORD not in shown
    assert credential not in shown


@pytest.mark.parametrize(
    ("no_proxy", "proxied"),
    [
        (".signalwire.com", False),
        ("example.signalwire.com:443", False),
        ("example.signalwire.com:8443", True),
        ("other.signalwire.com,  ", True),
        ("signalwire.co", True),
    ],
)
def test_no_proxy_matches_domains_and_ports_like_curl(clean_env, no_proxy, proxied):
    """A NO_PROXY entry matches the host or a parent domain, and its port if it has one."""
    clean_env.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    clean_env.setenv("NO_PROXY", no_proxy)
    client = swc.CallsClient("p", "t", space_url="example", trust_env=True)
    assert proxied == (client.proxy is not None)
