"""The wire form of calls: the only code that knows the API's JSON keys.

It structures responses into :class:`~signalwire_calls.Call` (a measured fast path
for the service's usual form, a cattrs-generated structurer for every other) and
writes them back exactly as received. Importing it installs the package's one
:class:`CallWire` as ``Call._wire``, the door ``Call.from_dict()``/``to_dict()``
use, so that the models import no converter.
"""

from __future__ import annotations

from typing import Final

from signalwire_calls._models import Call
from signalwire_calls._wire._converter import CallWire, make_converter
from signalwire_calls._wire._dates import format_date, parse_date
from signalwire_calls._wire._hooks import describe
from signalwire_calls._wire._keys import WIRE_ORDER

__all__ = [
    "WIRE",
    "WIRE_ORDER",
    "CallWire",
    "describe",
    "format_date",
    "make_converter",
    "parse_date",
]

#: The package's wire form, built once: what ``Call.from_dict()`` and every response use.
WIRE: Final = CallWire()
Call._wire = WIRE  # noqa: SLF001 - the models' door to the wire form (see the docstring)
