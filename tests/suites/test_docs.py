"""Run every Python example of the README and the docs against the emulator.

Each Markdown file is one test: its ``python`` blocks (plain code, or ``>>>``
doctests whose output is compared) run in order in one namespace, as a reader
would paste them. The examples are written the way a user runs them — a
``main()`` coroutine and ``asyncio.run(main())``, a client from
``CallsClient.from_env()`` — so the emulator runs on its own event loop in a
background thread and the ``SIGNALWIRE_*`` variables point at it. Each test runs
in a fresh directory that holds ``sids.txt`` (the emulator's SIDs plus one that
does not exist), the file the bulk and CLI examples read.

``<!-- skip: next if(..., reason="...") -->`` above a block skips it (Sybil's skip
syntax); the condition sees :data:`NAMESPACE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import importlib.util
import io
import shlex
import subprocess
import sys
import threading
import unittest
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import signalwire_calls
from signalwire_calls.testing import FakeSignalWire
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

#: The call the examples retrieve: API-NOTES §6.2, as the real service shapes it.
SID = "7d1e9c44-2a6b-4f3e-8c12-5b9a0e6f3d21"
#: A well-formed SID that the emulator does not hold (a 404 in the examples).
MISSING = "00000000-0000-4000-8000-000000000000"
#: What every example's namespace starts with: names for skip conditions.
NAMESPACE: dict[str, Any] = {
    "signalwire_calls": signalwire_calls,
    # ``<!-- skip: start if(not HAVE_RATELIMIT, reason=...) -->`` on the default install.
    "HAVE_RATELIMIT": importlib.util.find_spec("aiolimiter") is not None,
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


class Background:
    """An event loop in a daemon thread, so examples can call ``asyncio.run`` themselves."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def background() -> Iterator[Background]:
    loop = Background()
    yield loop
    loop.close()


async def _start_emulator() -> FakeSignalWire:
    fake = FakeSignalWire(calls=200, seed=1)
    fake.add_call(
        sid=SID,
        status="completed",
        direction="inbound",
        to="+15125550143",
        from_="+17375550188",
        date_created=datetime(2026, 10, 12, 14, 3, 11, tzinfo=UTC),
        date_updated=datetime(2026, 10, 12, 14, 5, 2, tzinfo=UTC),
        start_time=datetime(2026, 10, 12, 14, 3, 12, tzinfo=UTC),
        end_time=datetime(2026, 10, 12, 14, 4, 58, tzinfo=UTC),
        duration=106,
        price=0.0106,
        audio_in_mos="4.4",
    )
    await fake.start()
    return fake


@pytest.fixture
def emulator(background, monkeypatch, tmp_path) -> Iterator[FakeSignalWire]:
    fake = background.run(_start_emulator())
    try:
        for name in ("SIGNALWIRE_SPACE_URL", "SIGNALWIRE_SPACE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("SIGNALWIRE_BASE_URL", fake.base_url)
        monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", fake.project_id)
        monkeypatch.setenv("SIGNALWIRE_API_TOKEN", fake.api_token)
        (tmp_path / "sids.txt").write_text("\n".join([*fake.call_sids, MISSING]) + "\n")
        monkeypatch.chdir(tmp_path)
        yield fake
    finally:
        background.run(fake.close())


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
