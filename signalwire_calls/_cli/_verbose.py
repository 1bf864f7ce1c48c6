"""``-v``: what the client does, on stderr, like ``GH_DEBUG=api`` does for gh; never the token."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]

_FORMAT = "signalwire-calls: %(levelname)s %(message)s"


def configure_logging(verbosity: int) -> None:
    """Show the client's logs on stderr for ``-v`` (``verbosity`` is how many were given).

    Without ``-v`` the client logs nothing: the command reports each failure in
    its own words, once. ``-v``: each request
    (method, path, status, latency) and each retry; ``-vv``: also each attempt;
    ``-vvv``: also every other library's debug logs (asyncio, aiohttp).
    """
    ours = logging.getLogger("signalwire_calls")
    if verbosity < 1:
        # Only where nothing is configured, so that logging's last resort does not
        # print a give-up the command reports anyway; a host's own handlers stay.
        if not logging.getLogger().handlers and not ours.handlers:
            ours.addHandler(logging.NullHandler())
        return
    ours.propagate = False  # no asyncio or aiohttp noise unless -vvv asks for it
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    attempts = logging.getLogger("signalwire_calls.attempts")
    attempts.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)  # noqa: PLR2004 - -vv
    if verbosity >= 3:  # noqa: PLR2004 - -vvv
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format=_FORMAT)
        ours.propagate = True
        ours.removeHandler(handler)
