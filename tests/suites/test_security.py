"""The security properties of docs/security.md, each enforced by a test.

The token never shows (reprs, messages, tracebacks, logs at every level, the CLI);
HTTPS by default, plain HTTP only to loopback or by opt-in; redirects are not
followed; SIDs, filters, the project id and returned links cannot steer a request;
TLS verification is on by default and a custom ``ssl.SSLContext`` is honoured.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import ssl
import subprocess
import sys
import traceback
import uuid
from pathlib import Path

import aiohttp
import pytest
import signalwire_calls as swc
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from signalwire_calls._checks import check_sid
from signalwire_calls.testing import FakeSignalWire
from yarl import URL

from conftest import PROJECT, SID, TOKEN, Reply, sample

CALL = sample("call_real_2024.json")
BASIC = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
SECRETS = (TOKEN, BASIC)
NO_WAIT = swc.RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0)
PROPS = settings(max_examples=150, deadline=None)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def everything_about(err: BaseException) -> str:
    """The text a user could see of an error: str, repr, and the whole formatted chain."""
    return "\n".join([str(err), repr(err), *traceback.format_exception(err)])


def client_for(scripted, **kwargs):
    return swc.CallsClient(PROJECT, TOKEN, base_url=scripted.base_url, retry=NO_WAIT, **kwargs)


# ---------------------------------------------------------------- the token


def test_token_is_in_no_repr():
    """Neither the token nor the Authorization value appears in the client's or settings' repr."""
    client = swc.CallsClient(PROJECT, TOKEN, space_url="example")
    for text in (repr(client), str(client), repr(client._settings), repr(vars(client).keys())):
        assert_no_secret(text)


ECHO = f"Authorization: Basic {BASIC}; token={TOKEN}"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(401, {"code": 20003, "message": f"Authentication failed for {TOKEN}"}),
        Reply(403, f"<html>{ECHO}</html>", content_type="text/html"),
        Reply(404, {"errors": [{"code": "1", "message": ECHO}]}),
        Reply(429, {"message": ECHO}, headers={"Retry-After": "0"}),
        Reply(500, ECHO, content_type="text/plain"),
        Reply(302, ECHO, headers={"Location": "https://elsewhere.example/"}),
        Reply(200, ECHO, content_type="text/plain"),
        Reply(200, {**CALL, "sid": f"{TOKEN}"}),
        Reply(200, {**CALL, "duration": ECHO}),
        Reply(kind="reset"),
        Reply(kind="truncate", body=ECHO),
    ],
    ids=["401", "403", "404", "429", "500", "302", "200-text", "200-wrong-sid", "200-bad-field", "reset", "truncate"],
)  # fmt: skip
async def test_token_is_in_no_error_even_when_the_server_echoes_it(scripted, reply, caplog):
    """A server echoing the credentials back never gets them into an error, its traceback or a log."""
    caplog.set_level(logging.DEBUG)
    scripted.default = lambda _: reply
    async with client_for(scripted) as client:
        with pytest.raises(swc.SignalWireError) as caught:
            await client.get_call(CALL["sid"])
    assert_no_secret(everything_about(caught.value))
    for record in caplog.records:
        assert_no_secret(record.getMessage())


async def test_token_is_in_no_transport_or_timeout_error(scripted):
    """Connection refused and timeouts say what failed without the credentials."""
    scripted.default = lambda _: Reply(kind="hang")
    async with client_for(scripted, timeout=0.05) as client:
        with pytest.raises(swc.RequestTimeoutError) as timeout:
            await client.get_call(SID)
    async with swc.CallsClient(
        PROJECT, TOKEN, base_url="http://127.0.0.1:9/api", retry=NO_WAIT
    ) as client:
        with pytest.raises(swc.TransportError) as refused:
            await client.get_call(SID)
    assert_no_secret(everything_about(timeout.value) + everything_about(refused.value))


async def test_token_is_in_no_log_record_at_any_level(caplog):
    """A faulty soak logged at DEBUG (ours, aiohttp's, asyncio's) never mentions the credentials."""
    caplog.set_level(logging.DEBUG)
    async with FakeSignalWire(calls=60, seed=3, project_id=PROJECT, api_token=TOKEN) as fake:
        fake.fail("*", status=503, times=20)
        fake.fail("list", status=429, times=2, retry_after=0)
        async with fake.client(
            retry=swc.RetryPolicy(attempts=6, wait_initial=0, wait_jitter=0)
        ) as client:
            results = [
                r
                async for r in client.iter_call_results(
                    [*fake.call_sids, str(uuid.UUID(int=1)), "bad"]
                )
            ]
            listed = [c async for c in client.iter_calls(page_size=20)]
    assert 62 == len(results)
    assert 60 == len(listed)
    assert any("Retrying" in r.getMessage() for r in caplog.records)  # the logs were on
    for record in caplog.records:
        assert_no_secret(record.getMessage())
        if record.exc_info:
            assert_no_secret("".join(traceback.format_exception(*record.exc_info)))


def test_cli_output_never_shows_the_token(tmp_path):
    """The CLI's stdout and stderr (verbose, and on an auth failure) never contain the token."""
    pytest.importorskip("click")
    script = tmp_path / "run.py"
    script.write_text(
        "import asyncio, os, subprocess, sys\n"
        "from signalwire_calls.testing import FakeSignalWire\n"
        "async def main():\n"
        f"    async with FakeSignalWire(calls=5, seed=2, project_id={PROJECT!r}, api_token={TOKEN!r}) as fake:\n"
        "        fake.fail('*', status=503, times=1)\n"
        "        sid = fake.call_sids[0]\n"
        "        for token in (sys.argv[1], 'wrong-' + sys.argv[1]):\n"
        "            env = {**os.environ, 'SIGNALWIRE_PROJECT_ID': fake.project_id,\n"
        "                   'SIGNALWIRE_API_TOKEN': token, 'SIGNALWIRE_BASE_URL': fake.base_url}\n"
        "            for args in (['get', '-v', sid], ['list', '-v', '--limit', '3']):\n"
        "                proc = await asyncio.create_subprocess_exec(\n"
        "                    sys.executable, '-m', 'signalwire_calls', *args, env=env,\n"
        "                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
        "                out, err = await proc.communicate()\n"
        "                sys.stdout.write(f'== {args} {proc.returncode}\\n')\n"
        "                sys.stdout.write(out.decode() + err.decode())\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(script), TOKEN],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == proc.returncode, proc.stderr
    assert proc.stdout.count("== ") == 4
    assert "DEBUG" in proc.stdout  # verbose logs were produced
    assert_no_secret(proc.stdout + proc.stderr)
    assert f"wrong-{TOKEN}" not in proc.stdout


# ------------------------------------------------------------ where requests go


def test_https_by_default():
    """A space name or host becomes an https:// base URL."""
    for space in ("example", "example.signalwire.com", "example.signalwire.com/"):
        assert URL(swc.CallsClient(PROJECT, TOKEN, space_url=space).base_url).scheme == "https"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.signalwire.com/api",
        "http://127.0.0.1.example.com/api",
        "http://localhost.example.com/api",
        "http://10.0.0.1/api",
        "http://[::ffff:10.0.0.1]/api",
        "http://127.1/api",
    ],
)
def test_plain_http_refused_off_loopback(url):
    """Plain http:// to anything but a loopback address is a ConfigError."""
    with pytest.raises(swc.ConfigError, match="Refusing plain http://"):
        swc.CallsClient(PROJECT, TOKEN, base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api",
        "http://localhost/api",
        "http://[::1]:1/api",
        "http://127.9.9.9/api",
    ],
)
def test_plain_http_allowed_to_loopback(url):
    """Plain http:// to a loopback address is allowed (the emulator, a local proxy)."""
    assert url.rstrip("/") == swc.CallsClient(PROJECT, TOKEN, base_url=url).base_url


def test_plain_http_needs_explicit_opt_in():
    """allow_insecure_http=True is the one way to send plain http:// off loopback."""
    client = swc.CallsClient(
        PROJECT, TOKEN, base_url="http://proxy.internal/api", allow_insecure_http=True
    )
    assert client.base_url == "http://proxy.internal/api"


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@example.com/api", "https://example.com/api?x=1", "https://example.com/api#f"],
)
def test_base_url_cannot_carry_credentials_or_query(url):
    """A base URL with userinfo, a query or a fragment is refused."""
    with pytest.raises(swc.ConfigError):
        swc.CallsClient(PROJECT, TOKEN, base_url=url)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(scripted, status):
    """A redirect is an APIError; the target never sees a request, let alone the credentials."""
    hits = []

    async def elsewhere(request: web.Request) -> web.Response:
        hits.append(request.headers.get("Authorization"))
        return web.json_response(CALL)

    app = web.Application()
    app.router.add_get("/{tail:.*}", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    target = f"http://127.0.0.1:{runner.addresses[0][1]}/steal"
    scripted.default = lambda _: Reply(status, b"", headers={"Location": target})
    try:
        async with client_for(scripted) as client:
            with pytest.raises(swc.APIError) as caught:
                await client.get_call(CALL["sid"])
    finally:
        await runner.cleanup()
    assert status == caught.value.status
    assert [] == hits


HOSTILE_SIDS = [
    "../../../Accounts/other/Calls",
    "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21/../../x",
    "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21?PageSize=1",
    "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21#x",
    "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21\n",
    "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21%2F..",
    "%2e%2e%2f",
    "\uff17d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21",  # a fullwidth digit
    "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d2\u0661",  # an Arabic-Indic digit
    "{7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21}",
    "urn:uuid:7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21",
    "",
    None,
    7,
]


@pytest.mark.parametrize("sid", HOSTILE_SIDS)
async def test_hostile_sids_send_nothing(scripted, sid):
    """A SID that is not exactly a UUID is a ValueError, and no request is sent."""
    async with client_for(scripted) as client:
        with pytest.raises(ValueError, match="Invalid call SID"):
            await client.get_call(sid)
        results = [r async for r in client.iter_call_results([sid])]
    assert [] == scripted.hits
    assert isinstance(results[0].error, ValueError)


@PROPS
@given(st.text(max_size=50) | st.uuids().map(lambda u: str(u) + "/x"))
def test_only_uuids_pass_sid_validation(text):
    """check_sid accepts exactly the canonical UUID spelling (either case) and nothing else."""
    try:
        uuid_ok = str(uuid.UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        uuid_ok = False
    try:
        check_sid(text)
    except ValueError:
        accepted = False
    else:
        accepted = True
    assert uuid_ok == accepted


@PROPS
@given(st.uuids())
def test_a_valid_sid_makes_exactly_the_expected_path(sid):
    """A valid SID is the last path segment, with no query."""
    client = swc.CallsClient(PROJECT, TOKEN, space_url="example")
    url = URL(f"{client._requester.calls_url}/{check_sid(str(sid))}", encoded=True)
    assert f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{sid}" == url.path
    assert "" == url.query_string


ADDRESSES = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs")),
    min_size=1,
    max_size=30,
).filter(lambda s: s == s.strip())


@PROPS
@given(to=ADDRESSES, from_=ADDRESSES)
def test_filters_cannot_change_the_query(to, from_):
    """Any To/From value is sent as exactly that value of its own parameter, nothing more."""
    from signalwire_calls._listing import build_list_query, encode_query

    query = build_list_query(to=to, from_=from_, page_size=50)
    url = URL(f"https://example.signalwire.com/Calls?{encode_query(query)}", encoded=True)
    assert "/Calls" == url.path
    assert {"To": to, "From": from_, "PageSize": "50"} == dict(url.query)
    assert 3 == len(url.query)


async def test_filters_arrive_verbatim_at_the_server(scripted):
    """Hostile filter values reach the server as single, verbatim query values."""
    scripted.default = lambda _: Reply(
        200, sample("list_page_real.json") | {"next_page_uri": None, "calls": []}
    )
    to, from_ = "+1&Status=completed#frag", "sip:a/../b?c=d%2F"
    async with client_for(scripted) as client:
        assert [] == [c async for c in client.iter_calls(to=to, from_=from_, page_size=10)]
    (hit,) = scripted.hits
    assert f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls" == hit.path
    assert {"To": to, "From": from_, "PageSize": "10"} == dict(hit.query)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "completed&To=x"},
        {"parent_call_sid": "../x"},
        {"to": "+1\r\nX-Injected: 1"},
        {"from_": " +1"},
        {"page_size": 10_001},
    ],
)
def test_bad_filters_are_refused_before_any_request(kwargs):
    """Filters that are not what the API takes are a ValueError when iter_calls is called."""
    client = swc.CallsClient(PROJECT, TOKEN, space_url="example")
    with pytest.raises(ValueError):
        client.iter_calls(**kwargs)


@pytest.mark.parametrize("project", ["abc/../x", "a?b=1", "a#b", "a b", "%2F", "..", "a\\b"])
def test_project_id_cannot_change_the_path(project):
    """A project id that would change the request path or query is a ConfigError."""
    with pytest.raises(swc.ConfigError, match="project_id"):
        swc.CallsClient(project, TOKEN, space_url="example")


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/api/laml/2010-04-01/Accounts/x/Calls?Page=1",
        "//evil.example/Calls?Page=1",
        "http://127.0.0.1:1/Calls?Page=1",
        "/Calls?Page=1\r\nX: y",
    ],
)
async def test_next_page_uri_cannot_send_credentials_elsewhere(scripted, link):
    """A next_page_uri off the API's origin is a DecodeError; nothing is sent to it."""
    page = sample("list_page_real.json") | {"next_page_uri": link}
    scripted.default = lambda _: Reply(200, page)
    async with client_for(scripted) as client:
        with pytest.raises(swc.DecodeError, match="next_page_uri"):
            async for _ in client.iter_calls(page_size=2):
                pass
    assert 1 == len(scripted.hits)


# --------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_server(certificate):
    """An HTTPS loopback server answering every GET with a call; yields (base_url, hits)."""
    cert, key = certificate
    hits: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(CALL)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}/api/laml/2010-04-01", hits
    finally:
        await runner.cleanup()


async def test_tls_is_verified_by_default(tls_server):
    """An untrusted certificate is a TransportError at once (never retried); no request gets in."""
    base_url, hits = tls_server
    async with swc.CallsClient(PROJECT, TOKEN, base_url=base_url) as client:
        with pytest.raises(swc.TransportError, match=r"(?i)certificate") as info:
            await client.get_call(CALL["sid"])
        assert 0 == client._requester.middleware.retries
    assert "attempt" not in str(info.value)  # not "failed after N attempt(s)"
    assert [] == hits


async def test_custom_ssl_context_is_used(tls_server, certificate):
    """A custom SSLContext that trusts the certificate is honoured, with verification on."""
    base_url, hits = tls_server
    context = ssl.create_default_context(cafile=str(certificate[0]))
    assert context.verify_mode == ssl.CERT_REQUIRED
    async with swc.CallsClient(PROJECT, TOKEN, base_url=base_url, ssl=context) as client:
        call = await client.get_call(CALL["sid"])
    async with (
        aiohttp.ClientSession() as session,  # a caller's session: the context goes per request
        swc.CallsClient(PROJECT, TOKEN, base_url=base_url, ssl=context, session=session) as client,
    ):
        again = await client.get_call(CALL["sid"])
    assert CALL["sid"] == call.sid == again.sid
    assert 2 == len(hits)


def test_ssl_must_be_a_context():
    """ssl=False (turning verification off) is not accepted: only an SSLContext is."""
    with pytest.raises(swc.ConfigError, match="SSLContext"):
        swc.CallsClient(PROJECT, TOKEN, space_url="example", ssl=False)


# ------------------------------------------------------------ the environment


async def test_environment_proxies_are_not_trusted(scripted, monkeypatch):
    """HTTP(S)_PROXY in the environment never sees the requests (trust_env stays off)."""
    proxied = []

    async def proxy(request: web.Request) -> web.Response:
        proxied.append(request.headers.get("Authorization"))
        return web.json_response(CALL)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    scripted.default = lambda _: Reply(200, CALL)
    try:
        async with client_for(scripted) as client:
            await client.get_call(CALL["sid"])
    finally:
        await runner.cleanup()
    assert [] == proxied
    assert 1 == len(scripted.hits)


def test_audit_session_is_declared():
    """The audit nox session runs pip-audit over the dependency set."""
    noxfile = (Path(__file__).parents[2] / "noxfile.py").read_text()
    assert "def audit(" in noxfile
    assert '"pip-audit"' in noxfile


async def test_concurrent_clients_do_not_share_credentials(scripted):
    """Two clients in one loop each send only their own Authorization header."""
    scripted.default = lambda _: Reply(200, CALL)
    other = "PTanother-token-value"
    async with (
        client_for(scripted) as one,
        swc.CallsClient(PROJECT, other, base_url=scripted.base_url) as two,
    ):
        await asyncio.gather(one.get_call(CALL["sid"]), two.get_call(CALL["sid"]))
    sent = sorted(h.headers["Authorization"] for h in scripted.hits)
    expected = sorted(
        "Basic " + base64.b64encode(f"{PROJECT}:{t}".encode()).decode() for t in (TOKEN, other)
    )
    assert expected == sent
