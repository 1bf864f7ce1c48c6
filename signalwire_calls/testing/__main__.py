"""``python -m signalwire_calls.testing``: serve the emulator until Ctrl-C."""

from signalwire_calls.testing import main

main()
