"""``python -m signalwire_calls``: the command line (``pip install 'signalwire-calls[cli]'``)."""

from signalwire_calls._cli import main

if __name__ == "__main__":
    main()
