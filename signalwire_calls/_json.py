"""JSON in and out: orjson when it is installed (the ``speedups`` extra), else the stdlib.

Every failure to decode is a :class:`ValueError`, whichever parser runs: the stdlib
raises :class:`RecursionError` for a deeply nested document (a hostile body can
nest far deeper than the stack), and that is turned into a ``ValueError`` here, so
that no caller has to know which parser it got.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["HAVE_ORJSON", "dumps", "loads"]


def _stdlib_loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None


def _stdlib_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


#: Decode JSON from bytes or text; raises ``ValueError`` for anything that is not
#: JSON (orjson's ``JSONDecodeError`` is one, nesting deeper than 1,024 included).
loads: Callable[[bytes | str], Any]
#: Encode a value as compact UTF-8 JSON bytes.
dumps: Callable[[Any], bytes]
try:
    import orjson
except ImportError:  # the default install
    loads, dumps, HAVE_ORJSON = _stdlib_loads, _stdlib_dumps, False
else:
    loads, dumps, HAVE_ORJSON = orjson.loads, orjson.dumps, True
