"""The command line against a full disk, a bad credential and paths that collide (issue 18).

Each test failed before its fix: ``list --output`` on a full disk printed a traceback and
destroyed the previous export before its first request, ``fetch`` let ``--errors`` and
``--output`` name the same file, and a deeply nested body ended in a traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("click", reason="the command line needs the cli extra")
pytest.importorskip("rich", reason="the command line needs the cli extra")
from aiohttp import web
from aiohttp.test_utils import TestServer
from signalwire_calls.testing import FakeSignalWire
from test_cli import cli_env, one_line_error, run_cli

PREVIOUS = b'{"sid": "an earlier export"}\n'


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=30, seed=8) as emulator:
        yield emulator


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
async def test_list_on_a_full_disk_says_so_in_one_line(fake):
    """`list --output /dev/full` prints one line naming the file and the error, and exits 2."""
    done = await run_cli("list", "--output", "/dev/full", env=cli_env(fake))

    line = one_line_error(done)
    assert 2 == done.code
    assert "No space left on device" in line
    assert "/dev/full" in line


async def test_list_refused_by_the_api_keeps_the_previous_export(fake, tmp_path):
    """A `list` whose credentials are refused leaves the earlier export untouched, and no stray file."""
    out = tmp_path / "calls.jsonl"
    out.write_bytes(PREVIOUS)
    env = cli_env(fake, SIGNALWIRE_API_TOKEN="PTwrong-token")

    done = await run_cli("list", "--output", out, env=env)

    assert 2 == done.code
    assert "401" in one_line_error(done)
    assert PREVIOUS == out.read_bytes()
    assert [out] == list(tmp_path.iterdir())


async def test_list_replaces_the_previous_export_when_it_ends(fake, tmp_path):
    """A `list` that ends well puts its export in place of the earlier one, whole."""
    out = tmp_path / "calls.jsonl"
    out.write_bytes(PREVIOUS)

    done = await run_cli("list", "--output", out, env=cli_env(fake))

    assert 0 == done.code
    assert len(fake.call_sids) == len(out.read_bytes().splitlines())
    assert [out] == list(tmp_path.iterdir())


@pytest.mark.parametrize("link", [False, True], ids=["same path", "through a symlink"])
async def test_fetch_refuses_errors_and_output_on_one_file(fake, tmp_path, link):
    """`fetch --errors X --output X` (or a link to X) is refused before either is opened."""
    sids = tmp_path / "sids.txt"
    sids.write_text("\n".join(fake.call_sids) + "\n")
    out = tmp_path / "calls.jsonl"
    out.write_bytes(PREVIOUS)
    errors = out
    if link:
        errors = tmp_path / "errors.jsonl"
        errors.symlink_to(out)

    done = await run_cli(
        "fetch", "--input", sids, "--output", out, "--errors", errors, env=cli_env(fake)
    )

    assert 2 == done.code
    assert "name the same file" in one_line_error(done)
    assert PREVIOUS == out.read_bytes()
    assert 0 == sum(fake.attempts(sid) for sid in fake.call_sids)


async def test_fetch_refuses_its_input_as_output(fake, tmp_path):
    """`fetch --input X --output X` is refused: the export would be read as SIDs."""
    sids = tmp_path / "sids.txt"
    sids.write_text("\n".join(fake.call_sids) + "\n")

    done = await run_cli("fetch", "--input", sids, "--output", sids, env=cli_env(fake))

    assert 2 == done.code
    assert "--input and --output name the same file" in one_line_error(done)


async def test_get_of_a_deeply_nested_body_is_one_line():
    """A deeply nested 2xx body makes `get` print one line and exit 1, never a traceback."""
    deep = b"[" * 100_000 + b"]" * 100_000

    async def nested(_request: web.Request) -> web.Response:
        return web.Response(body=deep)

    app = web.Application()
    app.router.add_get("/{tail:.*}", nested)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        env = cli_env(
            SIGNALWIRE_BASE_URL=str(server.make_url("/api/laml/2010-04-01")),
            SIGNALWIRE_PROJECT_ID="3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40",
            SIGNALWIRE_API_TOKEN="PTtoken",
        )
        done = await run_cli("get", "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21", env=env)
    finally:
        await asyncio.wait_for(server.close(), 10)

    assert 1 == done.code
    assert "expected a JSON body" in one_line_error(done)
