"""What every command shares: exit codes, one-line errors, credentials, signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import IO, Any, NoReturn, TypeVar

import click

from signalwire_calls._cli._verbose import configure_logging
from signalwire_calls._client import CallsClient
from signalwire_calls._config import env_options
from signalwire_calls._errors import (
    AuthenticationError,
    ConfigError,
    PermissionDeniedError,
    SignalWireError,
    UnreachableError,
)
from signalwire_calls._retry import RetryPolicy

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_LOOKUPS",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "connection_options",
    "make_client",
    "run_main",
    "say",
    "stop_on_signals",
    "until_signal",
    "with_client",
]

#: The exit codes (``_cli.py`` documents them).
EXIT_OK, EXIT_LOOKUPS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
log = logging.getLogger("signalwire_calls.cli")


class CliError(click.ClickException):
    """An expected failure: one line on stderr and an exit code, never a traceback."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click declares it on the class

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the one line (click calls this before exiting)."""
        click.echo(f"signalwire-calls: error: {self.message}", err=True, file=file)


def say(message: str) -> None:
    """Print one line for a person on stderr."""
    click.echo(f"signalwire-calls: {message}", err=True)


# ------------------------------------------------------------------ credentials


def connection_options(func: F) -> F:
    """Add the credential and target flags (and ``--timeout``, ``--verbose``) to a command."""
    options = (
        click.option(
            "--space-url",
            metavar="HOST",
            help="Your space, e.g. example.signalwire.com. [env: SIGNALWIRE_SPACE_URL]",
        ),
        click.option(
            "--project-id", metavar="UUID", help="The Project ID. [env: SIGNALWIRE_PROJECT_ID]"
        ),
        click.option(
            "--api-token",
            metavar="TOKEN",
            help="An API token with the Voice scope; prefer the variable, as flags show "
            "in `ps`. [env: SIGNALWIRE_API_TOKEN]",
        ),
        click.option(
            "--base-url",
            metavar="URL",
            help="Any compatible server instead of your space: the emulator, a proxy. "
            "[env: SIGNALWIRE_BASE_URL]",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            help="Permit a plain http:// --base-url that is not on this machine "
            "(a trusted proxy): the token then travels unencrypted.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=30.0,
            show_default=True,
            help="Seconds per attempt.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            default=4,
            show_default=True,
            help="Retries of a failed request (5xx, 429, network errors).",
        ),
        click.option(
            "--no-proxy-env",
            is_flag=True,
            help="Ignore HTTPS_PROXY/HTTP_PROXY/NO_PROXY; by default they are followed, "
            "as curl does.",
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            help="Each request on stderr (-vv: each attempt, -vvv: every library's debug "
            "logs); never the token.",
        ),
    )
    for option in reversed(options):
        func = option(func)
    return func


#: The client's argument names in its messages, and the flags that set them.
_PYTHON_ARGUMENTS = re.compile(
    r"\b(allow_insecure_http=True|base_url|space_url|project_id|api_token)\b"
)


def _flag_for(match: re.Match[str]) -> str:
    return "--" + match[0].removesuffix("=True").replace("_", "-")


def make_client(conn: dict[str, Any]) -> CallsClient:
    """Build the client from the flags over the environment; name what is missing."""
    configure_logging(int(conn.pop("verbose", 0) or 0))
    timeout = conn.pop("timeout", 30.0)
    retry = RetryPolicy(attempts=conn.pop("retries", 4) + 1)
    # Like curl and gh, the command follows the environment's proxy (the library does
    # only when asked): --no-proxy-env turns that off.
    trust_env = not conn.pop("no_proxy_env", False)
    options: dict[str, Any] = env_options()
    options.update({key: value for key, value in conn.items() if value})
    if "project_id" not in options:
        raise CliError("no project id: set SIGNALWIRE_PROJECT_ID (or pass --project-id)")
    if "api_token" not in options:
        raise CliError("no API token: set SIGNALWIRE_API_TOKEN (or pass --api-token)")
    if "space_url" not in options and "base_url" not in options:
        raise CliError(
            "no space: set SIGNALWIRE_SPACE_URL, e.g. example.signalwire.com "
            "(or pass --space-url, or --base-url for another server)"
        )
    try:
        client = CallsClient(**options, timeout=timeout, retry=retry, trust_env=trust_env)
    except ConfigError as err:  # the client names its arguments: name the flags
        raise CliError(_PYTHON_ARGUMENTS.sub(_flag_for, str(err))) from None
    log.debug("calls of project %s at %s", client.project_id, client.base_url)
    if client.proxy is not None:
        log.debug("through the proxy %s (from the environment)", client.proxy)
    return client


async def with_client(
    client: CallsClient, job: Callable[[CallsClient], Coroutine[Any, Any, T]]
) -> T:
    """Run ``job(client)`` inside ``async with client``."""
    async with client:
        return await job(client)


# ------------------------------------------------------------- running, signals


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; turn expected failures into one line and an exit code."""
    try:
        return asyncio.run(main)
    except (AuthenticationError, PermissionDeniedError) as err:
        raise CliError(
            f"{err} (check SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN, "
            "and that the token has the Voice scope)"
        ) from None
    except (ConfigError, UnreachableError) as err:
        raise CliError(str(err)) from None  # exit 2: nothing could be done, not "some missing"
    except SignalWireError as err:
        raise CliError(str(err).splitlines()[0], EXIT_LOOKUPS) from None
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_OK)
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        raise CliError(f"{err.strerror or err}{where}") from None
    except KeyboardInterrupt:
        _interrupted()


def _interrupted() -> NoReturn:
    say("interrupted")
    sys.exit(EXIT_INTERRUPTED)


def stop_on_signals(stop: Callable[[], object]) -> Callable[[], None]:
    """Call ``stop`` on SIGINT or SIGTERM; return a function that restores the defaults."""
    loop = asyncio.get_running_loop()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop)
            handled.append(signum)

    def restore() -> None:
        for signum in handled:
            loop.remove_signal_handler(signum)

    return restore


async def until_signal(work: Awaitable[None]) -> bool:
    """Run ``work``; on SIGINT or SIGTERM cancel it cleanly. Return whether it was interrupted.

    Cancelling closes the job's iterators, which cancel their requests in flight, so
    everything that had arrived is written before the summary.
    """
    task = asyncio.ensure_future(work)
    interrupted = False

    def stop() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    restore = stop_on_signals(stop)
    try:
        await task
    except asyncio.CancelledError:
        if not interrupted:
            raise
    finally:
        restore()
    return interrupted
