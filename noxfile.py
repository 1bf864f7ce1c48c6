"""Development sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ... .

Every session runs on the interpreter that runs nox (``python=None``), because the
machines this project is built on have exactly one CPython (3.11). That also holds
under ``CI=true``.
"""

from __future__ import annotations

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
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=None)
def typecheck(session: nox.Session) -> None:
    """Type-check the package with ``mypy --strict``."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")
