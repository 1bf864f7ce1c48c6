"""Development sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ... .

Every session runs on the interpreter that runs nox (``python=None``), because the
machines this project is built on have exactly one CPython (3.11). That also holds
under ``CI=true``.
"""

from __future__ import annotations

import shutil

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False


@nox.session(python=None)
def tests(session: nox.Session) -> None:
    """Run the test suite (fast: the soak tests are in ``chaos``)."""
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["-q"]))


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
    session.install("-e", ".[test]", "mypy==2.4.1")
    session.run("mypy")
    session.run("mypy", "--strict", "tests/typing")


@nox.session(python=None)
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors (nitpicky)."""
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html"
    )


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
    """Run the side-by-side benchmarks (not part of the test run); writes docs/bench/."""
    session.install("-e", ".[bench]")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python=None)
def instructions(session: nox.Session) -> None:
    """Count instructions per lookup under valgrind (needs the valgrind command)."""
    session.install("-e", ".[bench]")
    session.run("python", "bench/instructions.py", *session.posargs)


@nox.session(python=None)
def chaos(session: nox.Session) -> None:
    """Soak the client against a hostile emulator and print the figures."""
    session.install("-e", ".[test]")
    session.run("python", "bench/chaos.py", *session.posargs)


@nox.session(python=None)
def audit(session: nox.Session) -> None:
    """Audit the runtime dependency set for known vulnerabilities."""
    session.install("pip-audit", "-e", ".[speedups,ratelimit,cli]")
    # --strict: a package that could not be looked up fails the audit instead of
    # being skipped, so "No known vulnerabilities found" always means checked.
    session.run("pip-audit", "--strict", "--skip-editable", "--progress-spinner", "off")
