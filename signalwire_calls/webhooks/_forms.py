"""Turn the ways callers hold decoded form fields into one list of ``(name, value)`` pairs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

#: Decoded form fields: a mapping (a value may be a list of values for a repeated
#: name) or ``(name, value)`` pairs in submission order.
Params = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]


def form_pairs(params: object, *, argument: str) -> list[tuple[str, str]]:
    """Return the fields as ``(name, value)`` pairs, every occurrence kept, in order.

    A mapping gives its items in iteration order; a list or tuple value stands for
    a repeated name, its values in the order given (API-NOTES §10.3, V6). Multidicts
    (aiohttp's ``MultiDictProxy``) iterate every occurrence through ``items()``.

    Args:
        params: The decoded form fields.
        argument: The caller's argument name, for the error messages.

    Returns:
        The pairs, as a new list.

    Raises:
        TypeError: ``params`` is not a mapping or pairs (a string or bytes counts as
            neither), or holds a name or a value that is not a ``str``; the message
            says which.
    """
    if isinstance(params, str | bytes | bytearray):
        raise TypeError(
            f"{argument} must be the decoded form fields (a mapping or (name, value) pairs), "
            f"not {type(params).__name__}; to check a raw JSON body, pass body= instead"
        )
    if isinstance(params, Mapping):
        items: Iterable[object] = params.items()
    elif isinstance(params, Iterable):
        items = params
    else:
        raise TypeError(
            f"{argument} must be a mapping or (name, value) pairs, got {type(params).__name__}"
        )
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:  # noqa: PLR2004 - a pair
            raise TypeError(
                f"{argument} must hold (name, value) pairs, got {type(item).__name__} {item!r}"
            )
        name, value = item
        if not isinstance(name, str):
            raise TypeError(f"{argument}: a field name must be a str, got {type(name).__name__}")
        if isinstance(value, list | tuple):
            values: Sequence[object] = value
        else:
            values = (value,)
        for one in values:
            if not isinstance(one, str):
                raise TypeError(
                    f"{argument}[{name!r}] must be a str (decoded form values are strings), "
                    f"got {type(one).__name__}"
                )
            pairs.append((name, one))
    return pairs
