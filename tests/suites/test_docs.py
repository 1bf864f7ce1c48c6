"""Run every Python example of the README and the docs against the emulator.

Each Markdown file is one test: its ``python`` blocks (plain code, or ``>>>``
doctests whose output is compared) run in order in one namespace, as a reader
would paste them. The examples are written the way a user runs them — a
``main()`` coroutine and ``asyncio.run(main())``, a client from
``CallsClient.from_env()`` — against a real ``signalwire-calls serve`` process,
started with the very command line the tutorial prints (on a free port), whose
``export`` lines set the ``SIGNALWIRE_*`` variables. Each test runs in a fresh
directory that holds the ``sids.txt`` that command wrote (the emulator's SIDs plus
one that does not exist), the file the bulk and CLI examples read.

``<!-- skip: next if(..., reason="...") -->`` above a block skips it (Sybil's skip
syntax); the condition sees :data:`NAMESPACE`.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib.util
import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import signalwire_calls
from signalwire_calls.testing import EXAMPLE_SID, MISSING_SID
from sybil import Example, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parents[2]
#: Pages other helpers own and write for a different purpose (figures, review notes).
NOT_EXAMPLES = {"performance.md", "security.md"}
DOCUMENTS = [
    ROOT / "README.md",
    *sorted(path for path in (ROOT / "docs").glob("*.md") if path.name not in NOT_EXAMPLES),
]

#: The call the examples retrieve, which ``signalwire-calls serve`` serves.
SID = EXAMPLE_SID
#: A well-formed SID that the emulator does not hold (a 404 in the examples).
MISSING = MISSING_SID
#: What every example's namespace starts with: names for skip conditions.
NAMESPACE: dict[str, Any] = {
    "signalwire_calls": signalwire_calls,
    # ``<!-- skip: start if(not HAVE_RATELIMIT, reason=...) -->`` on the default install.
    "HAVE_RATELIMIT": importlib.util.find_spec("aiolimiter") is not None,
    "HAVE_FASTAPI": all(importlib.util.find_spec(name) for name in ("fastapi", "uvicorn")),
    "HAVE_OTEL_SDK": importlib.util.find_spec("opentelemetry") is not None
    and importlib.util.find_spec("opentelemetry.sdk") is not None,
    # ``<!-- skip: next if(not HAVE_PYARROW, reason=...) -->`` for --format parquet.
    "HAVE_PYARROW": importlib.util.find_spec("pyarrow") is not None,
}

_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_EXECUTE = PythonEvaluator()


def run_python(example: Example) -> None:
    """Run a ``python`` block, keeping what it prints for a ``text`` block after it."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _EXECUTE(example)
    example.namespace["_printed"] = printed.getvalue()


def check_output(example: Example) -> str | None:
    """Compare a ``text`` block with what the ``python`` block before it printed.

    A ``text`` block that follows no printing block is prose, not output. ``...``
    matches anything, as in a doctest.
    """
    printed = example.namespace.pop("_printed", "")
    if not printed:
        return None
    expected = str(example.parsed)
    if doctest.OutputChecker().check_output(expected, printed, _FLAGS):
        return None
    return f"Expected output:\n{expected}\nPrinted:\n{printed}"


class PythonParser(PythonCodeBlockParser):
    """Sybil's Python parser (doctests and code blocks), with printed output kept."""

    def __init__(self) -> None:
        super().__init__(doctest_optionflags=_FLAGS)
        self.codeblock_parser = CodeBlockParser("python", run_python)


#: CLI commands a ``console`` block may show but a test must not run: ``serve``
#: never returns, ``demo`` has its own tests (and its own emulator).
_NOT_RUN = {"serve", "demo"}
_CLI_PREFIXES = (("signalwire-calls",), ("python", "-m", "signalwire_calls"))


def run_console(example: Example) -> str | None:
    """Run each ``$ signalwire-calls ...`` line of a ``console`` block against the emulator.

    The command must exit 0 (or 1: some SIDs of ``sids.txt`` do not exist) without a
    traceback. Lines with a pipe, and commands that are not this CLI (``pip``,
    ``export``), are shown for the reader only.
    """
    commands = []
    for line in str(example.parsed).splitlines():
        if not line.startswith("$ ") or "|" in line:
            continue
        words = shlex.split(line[2:], comments=True)
        for prefix in _CLI_PREFIXES:
            if tuple(words[: len(prefix)]) == prefix:
                args = words[len(prefix) :]
                if args and args[0] not in _NOT_RUN:
                    commands.append(args)
    if not commands:
        return None
    if importlib.util.find_spec("click") is None or importlib.util.find_spec("rich") is None:
        raise unittest.SkipTest("the command line needs the cli extra")
    for args in commands:
        done = subprocess.run(  # noqa: S603 - our own CLI, arguments from our own docs
            [sys.executable, "-m", "signalwire_calls", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode not in {0, 1} or "Traceback" in done.stderr:
            return f"signalwire-calls {shlex.join(args)} exited {done.returncode}:\n{done.stderr}"
    return None


SYBIL = Sybil(
    parsers=[
        PythonParser(),
        CodeBlockParser("text", check_output),
        CodeBlockParser("console", run_console),
        SkipParser(),
    ]
)


def serve_command() -> list[str]:
    """Return the ``signalwire-calls serve ...`` line the tutorial tells readers to run."""
    for line in (ROOT / "docs" / "tutorial.md").read_text().splitlines():
        if line.startswith("$ signalwire-calls serve") and "--sids-file" in line:
            return shlex.split(line[2:], comments=True)[1:]
    raise AssertionError("docs/tutorial.md shows no `signalwire-calls serve --sids-file` line")


#: ``signalwire-calls serve --calls N --sids-file F --port P`` without the ``cli`` extra.
_SERVE_WITHOUT_CLI = """
import asyncio, signal, sys
from signalwire_calls.testing import serve
args = sys.argv[2:]
option = lambda name, default: args[len(args) - 1 - args[::-1].index(name) + 1] if name in args else default
def ready(fake):
    print(f"export SIGNALWIRE_BASE_URL={fake.base_url}")
    print(f"export SIGNALWIRE_PROJECT_ID={fake.project_id}")
    print(f"export SIGNALWIRE_API_TOKEN={fake.api_token}")
    print("(an emulator-only token, not a real credential)", flush=True)
async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    await serve(int(option("--port", 0)), int(option("--calls", 10000)), 1,
                sids_file=option("--sids-file", None), ready=ready, stop=stop)
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[dict[str, str], Path]]:
    """Run the tutorial's ``signalwire-calls serve`` as a real process on a free port.

    Yields the ``export`` settings it prints and the directory where it wrote
    ``sids.txt``: the examples run against exactly what a reader gets.
    """
    where = tmp_path_factory.mktemp("served")
    args = [*serve_command(), "--port", "0"]  # the last --port wins: a free one
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    command = [sys.executable, "-m", "signalwire_calls", *args]
    if importlib.util.find_spec("click") is None or importlib.util.find_spec("rich") is None:
        # The default install has no command line: the same emulator, through the
        # library's testing.serve(), prints the same settings (the tutorial's options).
        command = [sys.executable, "-c", _SERVE_WITHOUT_CLI, *args]
    process = subprocess.Popen(  # noqa: S603 - our own CLI, arguments from our own docs
        command,
        cwd=where,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        settings: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                settings[name] = value
            if line.startswith("(an emulator-only token"):
                break
        assert {"SIGNALWIRE_BASE_URL", "SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN"} <= set(
            settings
        ), f"serve printed no settings (exit {process.poll()})"
        yield settings, where
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def emulator(served, monkeypatch, tmp_path) -> dict[str, str]:
    settings, where = served
    for name in ("SIGNALWIRE_SPACE_URL", "SIGNALWIRE_SPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    shutil.copy(where / "sids.txt", tmp_path / "sids.txt")
    monkeypatch.chdir(tmp_path)
    return settings


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_examples_run(path, emulator):
    """Every Python example of the page runs, in order, and its doctest output matches."""
    document = SYBIL.parse(path)
    document.namespace.update(NAMESPACE)
    skipped = []
    for example in document:
        try:
            example.evaluate()
        except unittest.SkipTest as skip:  # one skipped block must not hide the rest
            skipped.append(f"line {example.line}: {skip}")
    if skipped:
        pytest.skip(f"{path.name}: the other examples ran; skipped {'; '.join(skipped)}")


def test_the_pages_have_examples():
    """The README and the tutorial are collected and hold Python examples."""
    counts = {path.name: sum(1 for _ in SYBIL.parse(path)) for path in DOCUMENTS}
    assert counts["README.md"] >= 3
    assert counts["tutorial.md"] >= 5
