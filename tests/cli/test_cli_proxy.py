"""The command line follows the environment's proxy, like curl, unless --no-proxy-env."""

from __future__ import annotations

import pytest
from signalwire_calls.testing import FakeSignalWire
from test_cli import cli_env, run_cli

from forward_proxy import ForwardProxy

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture
async def fake():
    async with FakeSignalWire(calls=5, seed=11) as emulator:
        yield emulator


@pytest.fixture
async def proxy():
    forward = ForwardProxy()
    await forward.start()
    yield forward
    await forward.close()


def proxy_env(fake: FakeSignalWire, proxy: ForwardProxy) -> dict[str, str]:
    env = {k: v for k, v in cli_env(fake).items() if k not in PROXY_VARIABLES}
    return env | {"HTTP_PROXY": proxy.url}


async def test_the_cli_goes_through_the_environment_proxy(fake, proxy):
    """With HTTP_PROXY set, `get` reaches the API through that proxy."""
    done = await run_cli("get", fake.call_sids[0], env=proxy_env(fake, proxy))
    assert 0 == done.code, done.stderr
    assert 1 == len(proxy.seen)
    assert 1 == fake.attempts(fake.call_sids[0])


async def test_no_proxy_env_ignores_the_environment_proxy(fake, proxy):
    """--no-proxy-env sends the request straight to the API."""
    done = await run_cli("get", "--no-proxy-env", fake.call_sids[0], env=proxy_env(fake, proxy))
    assert 0 == done.code, done.stderr
    assert [] == proxy.seen
    assert 1 == fake.attempts(fake.call_sids[0])


async def test_a_bad_environment_proxy_is_one_line_naming_the_variable(fake, proxy):
    """An unusable HTTP_PROXY is a usage error (exit 2) naming it, without its password."""
    env = proxy_env(fake, proxy) | {"HTTP_PROXY": "socks5://u:hunter2pw@127.0.0.1:1"}
    done = await run_cli("get", fake.call_sids[0], env=env)
    assert 2 == done.code
    assert "HTTP_PROXY" in done.stderr
    assert "hunter2pw" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
