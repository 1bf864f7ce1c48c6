"""The emulator's faults: the random :class:`FaultProfile` and the request log's records."""

from __future__ import annotations

import random
from typing import Literal

import attrs

__all__ = ["FaultKind", "FaultProfile", "RequestRecord", "Scripted"]

FaultKind = Literal["status", "reset", "truncate", "hang"]


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

    ``status`` is ``None`` when the connection was reset without an answer; ``fault``
    names the injected fault (``"503"``, ``"429"``, ``"reset"``, ``"truncate"``,
    ``"hang"``) or is ``None``.
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
