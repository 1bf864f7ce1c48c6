"""The command line on an install without the ``cli`` extra: one line saying what to install."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_without_the_cli_extra_says_what_to_install():
    """Without click, `python -m signalwire_calls` prints the pip command and exits 2."""
    code = (
        "import sys, runpy; sys.modules['click'] = None; sys.argv = ['signalwire-calls', 'demo'];"
        "runpy.run_module('signalwire_calls', run_name='__main__')"
    )

    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )

    assert 2 == done.returncode
    assert "pip install 'signalwire-calls[cli]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
