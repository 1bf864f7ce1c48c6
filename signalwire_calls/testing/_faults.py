"""The emulator's faults: the random :class:`FaultProfile`, its spec, and the request log."""

from __future__ import annotations

import random
from typing import Any, Literal

import attrs

__all__ = ["FAULT_PRESETS", "FaultKind", "FaultProfile", "RequestRecord", "Scripted"]

FaultKind = Literal["status", "reset", "truncate", "hang"]

#: The names a fault spec may use, and the FaultProfile field each sets.
_SPEC_FIELDS = {
    "error": "error_rate",
    "5xx": "error_rate",
    "429": "rate_limit_rate",
    "rate-limit": "rate_limit_rate",
    "reset": "reset_rate",
    "truncate": "truncate_rate",
    "hang": "hang_rate",
    "hang-seconds": "hang_seconds",
    "retry-after": "retry_after",
    "latency": "latency",
}
#: Named fault specs: ``flaky`` is what ``signalwire-calls demo`` uses.
FAULT_PRESETS = {
    "none": "",
    "flaky": "error=0.03,429=0.001,reset=0.01,truncate=0.005,latency=0.02",
}


@attrs.frozen
class FaultProfile:
    """Random faults, drawn per request from the profile's own seeded RNG.

    Rates are probabilities per request and are tried in this order: ``error_rate``
    (500/502/503/504), ``rate_limit_rate`` (429 with ``Retry-After: retry_after``),
    ``reset_rate`` (connection dropped without a response), ``truncate_rate`` (full
    ``Content-Length``, part of the body, then close) and ``hang_rate`` (wait
    ``hang_seconds`` before answering). Every request also waits a uniform
    ``latency`` ``(low, high)`` in seconds.
    """

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    latency: tuple[float, float] = (0.0, 0.0)
    retry_after: float = 0
    seed: int = 1
    _rng: random.Random = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_rng", random.Random(self.seed))  # noqa: S311 - test faults

    #: The spec's syntax, for command-line help.
    SPEC_HELP = (
        "Comma-separated faults, e.g. 'error=0.05,429=0.02,reset=0.01,truncate=0.01,"
        "latency=0.05' (rates per request; latency in seconds, max or min:max; also "
        "hang=, hang-seconds=, retry-after=), or a preset: " + ", ".join(FAULT_PRESETS)
    )

    @classmethod
    def parse(cls, spec: str, seed: int = 1) -> FaultProfile:
        """Build a profile from a fault spec such as ``"error=0.05,latency=0.01:0.05"``.

        The one syntax of both emulator command lines (``signalwire-calls serve
        --faults`` and ``python -m signalwire_calls.testing --faults``); see
        :attr:`SPEC_HELP`, or name a preset (``none``, ``flaky``).

        Raises:
            ValueError: An unknown fault name or a value that is not a number.
        """
        spec = FAULT_PRESETS.get(spec.strip(), spec)
        options: dict[str, Any] = {"seed": seed}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, _, value = item.partition("=")
            field = _SPEC_FIELDS.get(name.strip().lower())
            if field is None:
                raise ValueError(f"unknown fault {name!r}; use {', '.join(_SPEC_FIELDS)}")
            try:
                if field == "latency":
                    low, _, high = value.rpartition(":")
                    options[field] = (float(low or 0), float(high))
                else:
                    options[field] = float(value)
            except ValueError:
                raise ValueError(f"{item!r}: expected {name}=NUMBER") from None
        return cls(**options)

    def describe(self) -> str:
        """Say in a few words what this profile injects (``"none"`` when nothing)."""
        parts = [
            f"{rate:.1%} {what}"
            for rate, what in (
                (self.error_rate, "server errors (5xx)"),
                (self.rate_limit_rate, "rate limits (429)"),
                (self.reset_rate, "dropped connections"),
                (self.truncate_rate, "cut-off bodies"),
                (self.hang_rate, f"hangs of {self.hang_seconds:g} s"),
            )
            if rate
        ]
        low, high = self.latency
        if high:
            parts.append(f"{low * 1000:g}-{high * 1000:g} ms latency")
        return ", ".join(parts) or "none"

    def draw(self) -> tuple[FaultKind | None, int]:
        """Return the fault for one request (``None``: answer normally) and its status."""
        roll = self._rng.random()
        for kind, rate, status in (
            ("status", self.error_rate, 0),
            ("status", self.rate_limit_rate, 429),
            ("reset", self.reset_rate, 0),
            ("truncate", self.truncate_rate, 200),
            ("hang", self.hang_rate, 200),
        ):
            if roll < rate:
                return kind, status or self._rng.choice((500, 502, 503, 504))  # type: ignore[return-value]
            roll -= rate
        return None, 200

    def delay(self) -> float:
        """Return this request's latency in seconds."""
        low, high = self.latency
        return self._rng.uniform(low, high) if high > 0 else 0.0


@attrs.frozen
class RequestRecord:
    """One request the emulator received, as :attr:`FakeSignalWire.requests` logs it.

    Attributes:
        method: The HTTP method (``"GET"``).
        path: The request path, without the query.
        query: The query parameters (``{"Status": "completed", "PageSize": "50"}``).
        sid: The call SID of a Retrieve a Call request, ``None`` for a List Calls page.
        status: The status answered, or ``None`` when the connection was reset
            without an answer.
        fault: The injected fault (``"503"``, ``"429"``, ``"reset"``, ``"truncate"``,
            ``"hang"``), or ``None``.
    """

    method: str
    path: str
    query: dict[str, str]
    sid: str | None
    status: int | None
    fault: str | None


@attrs.define
class Scripted:
    """A fault scripted with :meth:`FakeSignalWire.fail`; ``times`` counts down."""

    kind: FaultKind
    status: int
    times: int | None
    retry_after: float | None
