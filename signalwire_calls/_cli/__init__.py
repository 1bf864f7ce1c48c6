"""The ``signalwire-calls`` command line: the entry point and its dependency check.

The commands live in ``_cli_app.py`` (parsing, credentials, the commands),
``_cli_fetch.py`` (the resumable export) and ``_cli_output.py`` (formats, the
progress bar and the summary). These modules are the only code in the package that
prints or chooses an exit code:

====  =========================================================================
0     everything asked for was found
1     some lookups failed or some SIDs do not exist
2     a usage or configuration error: bad flags, missing or refused credentials,
      an unwritable file, the ``cli`` extra not installed
130   interrupted (Ctrl-C or SIGTERM), after writing what had arrived and a summary
====  =========================================================================

The CLI needs the ``cli`` extra (click and rich); without it, it says so in one line.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

#: Exit code of a usage or configuration error (click uses 2 for bad flags too).
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line and exit with its status code."""
    try:
        import click  # noqa: F401, PLC0415 - only to check that the extra is installed
        import rich  # noqa: F401, PLC0415
    except ImportError:
        sys.stderr.write(
            "signalwire-calls: the command line needs click and rich: "
            "pip install 'signalwire-calls[cli]'\n"
        )
        sys.exit(EXIT_USAGE)
    from signalwire_calls._cli._app import cli  # noqa: PLC0415 - only once the extra is known

    # The command line is an application: what the imports made lives as long as
    # the process, and need not be traversed by every collection of a bulk job
    # (most of which are of objects alive for one lookup).
    gc.freeze()

    cli.main(args=list(argv) if argv is not None else None, prog_name="signalwire-calls")
    sys.exit(0)  # pragma: no cover - click's standalone mode always exits itself
