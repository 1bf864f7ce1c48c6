"""What a hostile server or a careless caller once broke (issue 18), each pinned by a test.

Every test here failed against the code before its fix: a bare ``RecursionError`` on the
default install, the token in a chained aiohttp exception's repr or in an unscrubbed
``__context__``, a JSON-escaped echo of the token rebuilt by decoding, a caller session's
``raise_for_status`` hiding API errors, a client used from a second event loop, a listing
of empty pages that never ends, and calls of another account accepted without a choice.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import aiohttp
import pytest
import signalwire_calls as swc
from signalwire_calls import _json
from signalwire_calls._listing import MAX_EMPTY_PAGES
from signalwire_calls.testing import FakeSignalWire

from conftest import PROJECT, SID, TOKEN, Reply, sample

CALL = sample("call_real_2024.json")
NO_WAIT = swc.RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0, wait_max=0)
#: What must never appear: the token, and the base64 credential of the Authorization header.
SECRETS = (TOKEN, base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode())
#: A JSON document nested far deeper than the interpreter's recursion limit.
DEEP = b"[" * 100_000 + b"]" * 100_000


def client_for(server: Any, **options: Any) -> swc.CallsClient:
    return swc.CallsClient(PROJECT, TOKEN, base_url=server.base_url, retry=NO_WAIT, **options)


def chain(err: BaseException) -> Iterator[BaseException]:
    """Yield ``err`` and every exception reachable from it through __cause__ and __context__."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def assert_no_secret(err: BaseException) -> None:
    """Assert that no exception in the chain shows a secret in its str(), repr() or attributes."""
    for link in chain(err):
        shown = [str(link), repr(link), *(repr(v) for v in vars(link).values())]
        request_info = getattr(link, "request_info", None)
        if request_info is not None:
            shown.append(repr(request_info))
        for text in shown:
            for secret in SECRETS:
                assert secret not in text, f"{type(link).__name__} shows a secret: {text[:200]}"


# ---------------------------------------------------- 1. deep nesting, default install


def test_stdlib_decoder_turns_deep_nesting_into_value_error():
    """The stdlib fallback (the default install) raises ValueError, not RecursionError."""
    with pytest.raises(ValueError, match="nested too deeply"):
        _json._stdlib_loads(DEEP)


def test_every_decoder_raises_value_error_for_deep_nesting():
    """Whichever parser is installed, a deeply nested body is a ValueError."""
    with pytest.raises(ValueError):
        _json.loads(DEEP)


async def test_deeply_nested_call_body_is_a_decode_error(scripted):
    """get_call, iter_call_results and iter_calls turn a deeply nested 2xx body into DecodeError."""
    scripted.default = lambda _: Reply(200, DEEP)
    async with client_for(scripted) as client:
        with pytest.raises(swc.DecodeError, match="expected a JSON body"):
            await client.get_call(SID)
        results = [r async for r in client.iter_call_results([SID])]
        with pytest.raises(swc.DecodeError):
            [call async for call in client.iter_calls(limit=5)]
    assert isinstance(results[0].error, swc.DecodeError)
    assert "failed" == results[0].outcome


# ------------------------------------------- 2. secrets in chained aiohttp exceptions


@pytest.fixture
async def raw_server() -> AsyncIterator[Any]:
    """A loopback TCP server that answers every request with the bytes in ``.reply``."""

    class Raw:
        reply = b""
        base_url = ""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(Raw.reply)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    Raw.base_url = f"http://127.0.0.1:{port}/api/laml/2010-04-01"
    try:
        yield Raw
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000 + b"\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: zzz\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    ],
    ids=["bad status line", "bad content-length", "oversized header", "unknown encoding"],
)
async def test_broken_responses_keep_the_token_out_of_the_whole_chain(raw_server, reply):
    """A malformed response is a TransportError whose chain, reprs included, holds no secret."""
    raw_server.reply = reply
    async with client_for(raw_server) as client:
        try:
            await client.get_call(SID)
        except swc.SignalWireError as err:
            error: swc.SignalWireError = err
        else:  # pragma: no cover - a body aiohttp accepts decodes as {} and fails as a call
            pytest.fail("the broken response was accepted")
    assert_no_secret(error)
    if isinstance(error, swc.TransportError):
        assert isinstance(error.__cause__, aiohttp.ClientError)  # still says what failed


async def test_decode_error_keeps_no_unscrubbed_original_in_its_context(scripted):
    """A call body echoing the token in a date is a DecodeError with no secret in its chain."""
    body = dict(CALL, date_created=f"Mon, {TOKEN}")
    scripted.default = lambda _: Reply(200, body)
    async with client_for(scripted) as client:
        with pytest.raises(swc.DecodeError, match=r"\$\.date_created") as raised:
            await client.get_call(CALL["sid"])
    assert raised.value.__context__ is None
    assert_no_secret(raised.value)


async def test_list_page_decode_error_keeps_no_secret_in_its_chain(scripted):
    """A page whose call echoes the token is a DecodeError with no secret in its chain."""
    page = sample("list_page_real.json")
    page["calls"][0]["duration"] = {"echo": TOKEN}
    scripted.default = lambda _: Reply(200, page)
    async with client_for(scripted) as client:
        with pytest.raises(swc.DecodeError) as raised:
            [call async for call in client.iter_calls(limit=5)]
    assert "$.calls[0].duration" == raised.value.field
    assert_no_secret(raised.value)


# ----------------------------------------------- 3. JSON-escaped echoes of the token


async def test_token_echoed_with_json_escapes_is_scrubbed(scripted):
    """An error body that spells the token with \\u escapes does not rebuild it in the message."""
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in TOKEN)
    body = f'{{"code": 20003, "message": "bad token {escaped}", "more_info": "x{escaped}"}}'
    scripted.default = lambda _: Reply(401, body)
    async with client_for(scripted) as client:
        with pytest.raises(swc.AuthenticationError) as raised:
            await client.get_call(SID)
    assert "bad token ***" == raised.value.message
    assert_no_secret(raised.value)


# ------------------------------------------ 4. a caller session that raises for status


async def test_caller_session_with_raise_for_status_still_gets_api_errors(scripted):
    """A caller's session made with raise_for_status=True still yields NotFoundError and 'missing'."""
    scripted.default = lambda _: Reply(404, sample("error_404.json"))
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        client_for(scripted, session=session) as client,
    ):
        with pytest.raises(swc.NotFoundError):
            await client.get_call(SID)
        result = await client.get_calls([SID])
    assert (SID,) == result.missing
    assert {} == dict(result.failed)


# ------------------------------------------------------------- 5. one client, one loop


def test_a_client_refuses_a_second_event_loop(scripted_thread):
    """A module-level client used by a second asyncio.run says it belongs to its first loop."""
    client = swc.CallsClient(PROJECT, TOKEN, base_url=scripted_thread.base_url, retry=NO_WAIT)
    first = asyncio.new_event_loop()
    try:
        assert SID == first.run_until_complete(client.get_call(SID)).sid
        with pytest.raises(RuntimeError, match="belongs to the event loop it first ran in"):
            asyncio.run(client.get_call(SID))
        assert SID == first.run_until_complete(client.get_call(SID)).sid  # still fine there
    finally:
        first.run_until_complete(client.aclose())
        first.close()


def test_a_bulk_job_iterated_in_a_second_event_loop_is_refused_before_any_lookup(scripted_thread):
    """A job made in the client's loop and run in another raises there, at once, and asks nothing.

    Its lookups do not check the loop one by one (on CPython 3.11 that costs a system
    call each): the job checks once, when it starts.
    """
    client = swc.CallsClient(PROJECT, TOKEN, base_url=scripted_thread.base_url, retry=NO_WAIT)
    first = asyncio.new_event_loop()

    async def make_job() -> AsyncIterator[swc.CallResult]:
        await client.get_call(SID)  # bound to the first loop
        return client.iter_call_results([SID])

    async def run_job(job: AsyncIterator[swc.CallResult]) -> list[swc.CallResult]:
        return [result async for result in job]

    async def new_job() -> list[swc.CallResult]:
        return await run_job(client.iter_call_results([SID]))

    try:
        job = first.run_until_complete(make_job())
        asked = len(scripted_thread.requests)
        with pytest.raises(RuntimeError, match="belongs to the event loop it first ran in"):
            asyncio.run(run_job(job))
        assert asked == len(scripted_thread.requests)  # not one lookup was tried
        again = first.run_until_complete(new_job())
        assert [SID] == [result.sid for result in again]  # its own loop still runs jobs
    finally:
        first.run_until_complete(client.aclose())
        first.close()


async def test_another_thread_cannot_use_the_client_or_cancel_its_tasks(scripted):
    """A thread with its own loop is refused, and the owning loop's lookups finish untouched."""
    scripted.default = lambda _: Reply(200, CALL)
    errors: list[BaseException] = []
    async with client_for(scripted, timeout=0.5) as client:
        await client.get_call(CALL["sid"])  # bound to this loop

        def elsewhere() -> None:
            try:
                asyncio.run(client.get_call(CALL["sid"]))
            except BaseException as err:  # noqa: BLE001 - collected for the assertion
                errors.append(err)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        calls = await asyncio.gather(*(client.get_call(CALL["sid"]) for _ in range(20)))
        await asyncio.to_thread(thread.join, 10)
    assert 20 == len(calls)
    assert 1 == len(errors)
    assert isinstance(errors[0], RuntimeError)
    assert "belongs to the event loop" in str(errors[0])


# --------------------------------------------------------- 8. endless empty pages


async def test_endless_empty_pages_are_bounded(scripted):
    """Empty pages with ever-new next links stop after MAX_EMPTY_PAGES, with a DecodeError."""
    pages = iter(range(10_000))

    def empty_page(_request: Any) -> Reply:
        number = next(pages)
        link = (
            f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls?Page={number + 1}&PageToken=PA{number}"
        )
        return Reply(200, {"calls": [], "next_page_uri": link, "page": number})

    scripted.default = empty_page
    async with client_for(scripted) as client:
        with pytest.raises(swc.DecodeError, match=f"{MAX_EMPTY_PAGES} empty pages in a row"):
            [call async for call in client.iter_calls(limit=10)]
    assert MAX_EMPTY_PAGES == len(scripted.hits)


async def test_a_few_empty_pages_are_still_skipped(scripted):
    """Fewer than MAX_EMPTY_PAGES empty pages before the calls are skipped over, as before."""
    page = sample("list_page_real.json")
    page["next_page_uri"] = None
    replies = [
        Reply(
            200,
            {
                "calls": [],
                "next_page_uri": f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls?PageToken=PA{n}",
            },
        )
        for n in range(MAX_EMPTY_PAGES - 1)
    ]
    scripted.script[:] = [*replies, Reply(200, page)]
    async with client_for(scripted) as client:
        calls = [call async for call in client.iter_calls()]
    assert len(page["calls"]) == len(calls)


# ------------------------------------------------------------------- 9. tenancy


@pytest.fixture
async def two_accounts() -> AsyncIterator[tuple[FakeSignalWire, str]]:
    """An emulator holding one call whose account_sid is another account's (a subproject's)."""
    async with FakeSignalWire(calls=5, seed=3) as fake:
        other = "5e0b7d1c-2a3f-4b6e-9c8d-7f1a2b3c4d5e"
        call = fake.add_call(account_sid=other)
        yield fake, call["sid"]


async def test_calls_of_another_account_are_accepted_by_default(two_accounts):
    """By default a call whose account_sid differs (a subproject's) is returned as it is."""
    fake, sid = two_accounts
    async with fake.client() as client:
        call = await client.get_call(sid)
        listed = [c.sid async for c in client.iter_calls()]
    assert "5e0b7d1c-2a3f-4b6e-9c8d-7f1a2b3c4d5e" == call.account_sid
    assert sid in listed


async def test_strict_account_refuses_calls_of_another_account(two_accounts):
    """With strict_account=True that call is a DecodeError on $.account_sid, everywhere."""
    fake, sid = two_accounts
    async with fake.client(strict_account=True) as client:
        with pytest.raises(swc.DecodeError, match="strict_account") as raised:
            await client.get_call(sid)
        result = await client.get_calls([sid, fake.call_sids[-1]])
        with pytest.raises(swc.DecodeError, match="belongs to account") as listed:
            [c async for c in client.iter_calls()]
    assert "$.account_sid" == raised.value.field
    assert sid in result.failed
    assert 1 == len(result.found)
    assert listed.value.field.startswith("$.calls[")


# ------------------------------------------------------- a server in another thread


@pytest.fixture
def scripted_thread() -> Iterator[Any]:
    """A loopback server on its own loop in a thread, for tests that run loops themselves."""
    from aiohttp import web

    class Info:
        base_url = ""
        requests: ClassVar[list[str]] = []  # the paths asked for

    async def handle(request: web.Request) -> web.Response:
        Info.requests.append(request.path)
        return web.Response(body=json.dumps(CALL).replace(CALL["sid"], SID).encode())

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner: dict[str, Any] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        app_runner = web.AppRunner(app)
        await app_runner.setup()
        site = web.TCPSite(app_runner, "127.0.0.1", 0)
        await site.start()
        port = app_runner.addresses[0][1]
        Info.base_url = f"http://127.0.0.1:{port}/api/laml/2010-04-01"
        runner["runner"] = app_runner
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    try:
        yield Info
    finally:
        asyncio.run_coroutine_threadsafe(runner["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
