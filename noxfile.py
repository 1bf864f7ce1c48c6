"""Development sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ... .

The test suite runs on every CPython of :data:`PYTHONS` that is on the machine
(a missing one is skipped, also under ``CI=true``), each on the default install
(no extras: the tests that need one skip, saying which) and with every extra.
"""

from __future__ import annotations

import shutil

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
# Run what is there: a machine without, say, 3.13 still runs the others.
nox.options.error_on_missing_interpreters = False

#: The CPythons the package supports (the classifiers in pyproject.toml say the same).
PYTHONS = ["3.11", "3.12", "3.13"]
#: Every extra and test peer: the "extras" install of the test matrix.
ALL = "test,test-peers,speedups,ratelimit,cli,otel,dask,parquet"


@nox.session(python=PYTHONS)
@nox.parametrize("install", ["default", "extras"])
def tests(session: nox.Session, install: str) -> None:
    """Run the test suite on the default install or with every extra (the soaks are ``chaos``)."""
    session.install("-e", ".[test]" if install == "default" else f".[{ALL}]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python="3.11")
def coverage(session: nox.Session) -> None:
    """Measure branch coverage of the suite with every extra; fail under the floor."""
    session.install("-e", f".[{ALL}]")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", "-q", *session.posargs)
    session.run("coverage", "combine")
    session.run("coverage", "report", "--fail-under=94")  # 95 % when this floor was set


@nox.session(python=None)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff, and the import contracts with import-linter."""
    # pinned: select=ALL grows with every ruff release
    session.install("-e", ".", "ruff==0.17.6", "import-linter==2.17")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")  # the one-way rule: [tool.importlinter] in pyproject.toml


@nox.session(python=None)
def typecheck(session: nox.Session) -> None:
    """Type-check the package, and the public API as users see it, with ``mypy --strict``."""
    session.install("-e", f".[{ALL}]", "mypy==2.4.1")
    session.run("mypy")
    session.run("mypy", "--strict", "tests/typing")


@nox.session(python=None)
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors (nitpicky)."""
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html"
    )


def _bench(session: nox.Session) -> None:
    # `nox -s bench -- --wan [wan.py options]` runs only the WAN/TLS/controller profiles.
    args = list(session.posargs)
    if "--wan" in args:
        args.remove("--wan")
        session.run("python", "bench/wan.py", *args)
        return
    session.run("python", "bench/run.py", *args)
    session.run("python", "bench/wan.py", "--out", "docs/bench")


@nox.session(python=None)
def docs_screens(session: nox.Session) -> None:
    """Build the docs and look at every page in headless Chromium at 1280 px (not in CI).

    Checks that each page renders, that nothing scrolls sideways and that the
    benchmark plot loads; screenshots go to docs/_build/screens/. Needs the
    chromium command (Debian: apt-get install chromium).
    """
    if not any(map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))):
        session.skip("needs Chromium: apt-get install chromium (Debian) or your OS's package")
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html"
    )
    session.run("python", "docs/screens.py", *session.posargs)


@nox.session(python=None)
def bench(session: nox.Session) -> None:
    """Run the side-by-side benchmarks with the speedups extra (orjson); writes docs/bench/.

    ``nox -s bench -- --processes [1 2 ...] [--lookups N] [--concurrency C]`` instead
    compares ``fetch --processes N`` (bench/processes.py): throughput, the CPU per lookup
    of the command and of the server, with the machine's load.
    """
    if session.posargs[:1] == ["--processes"]:
        session.install("-e", ".[cli,speedups]", "uvloop>=0.19")  # uvloop: a cheap server
        session.run("python", "bench/processes.py", *session.posargs)
        return
    session.install("-e", ".[bench,speedups]")
    _bench(session)


@nox.session(python=None)
def bench_default(session: nox.Session) -> None:
    """The same benchmarks on the default install (no orjson), in a separate environment."""
    session.install("-e", ".[bench]")
    session.run("python", "-c", "import importlib.util as u; assert not u.find_spec('orjson')")
    _bench(session)


@nox.session(python=None)
def instructions(session: nox.Session) -> None:
    """Count instructions per lookup under valgrind (needs the valgrind command)."""
    session.install("-e", ".[bench]")
    session.run("python", "bench/instructions.py", *session.posargs)


@nox.session(python=None)
def chaos(session: nox.Session) -> None:
    """Soak the client against a hostile emulator and print the figures."""
    session.install("-e", f".[{ALL}]")
    session.run("python", "bench/chaos.py", *session.posargs)


@nox.session(python=None)
def audit(session: nox.Session) -> None:
    """Audit the runtime dependency set for known vulnerabilities."""
    session.install("pip-audit", "-e", ".[speedups,ratelimit,cli]")
    # --strict: a package that could not be looked up fails the audit instead of
    # being skipped, so "No known vulnerabilities found" always means checked.
    session.run("pip-audit", "--strict", "--skip-editable", "--progress-spinner", "off")
