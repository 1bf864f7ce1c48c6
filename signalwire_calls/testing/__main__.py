"""``python -m signalwire_calls.testing``: the same command as ``signalwire-calls serve``.

One emulator command line, with one set of options and one output: this runs the
CLI's ``serve`` (it needs the ``cli`` extra, as ``signalwire-calls`` does).
"""

import runpy
import sys

sys.argv = ["signalwire-calls", "serve", *sys.argv[1:]]
runpy.run_module("signalwire_calls", run_name="__main__", alter_sys=True)
