"""What a rate limiter backend is: the partitions it is asked about and the verdict it returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from plexica.ratelimit.gcra import interval_us

__all__ = ["Quota", "QuotaState", "RateLimiter", "Verdict"]


@attrs.frozen
class Quota:
    """One partition a request counts against: its key and ``limit`` requests per ``window_seconds``.

    ``policy`` is the name clients see in the ``RateLimit`` headers (``"user"``, ``"tenant"``,
    ``"anonymous"``); ``cost`` is what this request uses of it. ``interval_us`` (the GCRA emission
    interval) and ``charge`` (the cost, at most the whole quota) are derived once, here.
    """

    policy: str
    key: str
    limit: int
    window_seconds: int
    cost: int = 1
    interval_us: int = attrs.field(init=False)
    charge: int = attrs.field(init=False)

    @interval_us.default
    def _interval(self) -> int:
        return interval_us(self.limit, self.window_seconds)

    @charge.default
    def _charge(self) -> int:
        return min(self.cost, self.limit)


@attrs.frozen
class QuotaState:
    """A partition after a decision: what is left and when it is whole again."""

    policy: str
    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: float


@attrs.frozen
class Verdict:
    """A limiter's answer for one request.

    Attributes:
        allowed: every partition admitted the request, and each was charged.
        retry_after: seconds until the request would be admitted; 0 when allowed.
        states: one per :class:`Quota` asked about, in the same order.
    """

    allowed: bool
    retry_after: float
    states: tuple[QuotaState, ...]

    @property
    def refused_by(self) -> str | None:
        """The policy that refused the request (the one with nothing left), if any."""
        if self.allowed:
            return None
        return min(self.states, key=lambda state: state.remaining).policy if self.states else None


@runtime_checkable
class RateLimiter(Protocol):
    """Decides and charges atomically: a refused request is charged to no partition.

    ``name`` labels the backend in metrics and logs (``"redis"``, ``"memory"``).
    """

    name: str

    async def acquire(self, quotas: Sequence[Quota]) -> Verdict:
        """Admit a request against every quota or refuse it.

        Raises:
            BackendUnavailableError: the backend did not answer.
        """
        ...
