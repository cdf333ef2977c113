"""A circuit breaker per remote plugin: closed → open → half-open → closed.

Closed, calls pass and consecutive failures are counted; ``failures`` of them in a row open the
breaker. Open, every call is refused at once (:class:`PluginUnavailableError`, a 503) for
``reset_seconds``, so a plugin that is down costs callers nothing and is not hammered while it
recovers. Then the breaker is half-open: one trial call passes (the others are still refused);
its success closes the breaker, its failure opens it for another ``reset_seconds``. A failure is
what says the plugin is unwell — no answer, a timeout, a 5xx — never a 4xx, which is the plugin
working as designed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, Literal, final

from plexica_sdk.errors import PluginUnavailableError

__all__ = ["STATE_VALUES", "BreakerState", "CircuitBreaker"]

logger = logging.getLogger(__name__)

BreakerState = Literal["closed", "half_open", "open"]
#: The gauge value of each state (``plugin_breaker_state``): higher is worse.
STATE_VALUES: Final[dict[BreakerState, int]] = {"closed": 0, "half_open": 1, "open": 2}


@final
class CircuitBreaker:
    """The breaker of one remote plugin, shared by its hook calls, event deliveries and proxied routes.

    Args:
        plugin: the plugin's name (for errors and logs).
        failures: consecutive failures that open the breaker.
        reset_seconds: how long it stays open before a trial call.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        plugin: str,
        *,
        failures: int = 5,
        reset_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plugin = plugin
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_since: float | None = None
        #: How often the breaker opened since the host started.
        self.opened = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.reset_seconds else "open"

    @property
    def failures(self) -> int:
        """Consecutive failures so far."""
        return self._failures

    def admit(self, what: str) -> bool:
        """Let one call through, or refuse it; True when the call is the half-open trial.

        A trial whose outcome was never recorded (its caller was cancelled) stops blocking other
        trials after ``reset_seconds``.

        Raises:
            PluginUnavailableError: the breaker is open, or half-open with a trial in flight.
        """
        state = self.state
        if state == "closed":
            return False
        now = self._clock()
        if state == "half_open" and (self._trial_since is None or now - self._trial_since >= self.reset_seconds):
            self._trial_since = now
            return True
        raise PluginUnavailableError(self.plugin, what, "its circuit breaker is open")

    def succeeded(self, *, trial: bool = False) -> None:
        """The plugin answered (any status below 500)."""
        if self._opened_at is not None and (trial or self.state == "half_open"):
            logger.info("circuit breaker closed", extra={"plugin": self.plugin})
            self._opened_at = None
        if trial:
            self._trial_since = None
        self._failures = 0

    def failed(self, *, trial: bool = False) -> None:
        """The plugin did not answer, timed out or answered a 5xx."""
        self._failures += 1
        if trial:
            self._trial_since = None
        if trial or (self._opened_at is None and self._failures >= self.threshold):
            if self._opened_at is None:
                self.opened += 1
                logger.warning("circuit breaker opened", extra={"plugin": self.plugin, "failures": self._failures})
            self._opened_at = self._clock()

    def abandon(self, *, trial: bool) -> None:
        """A call ended without an outcome (cancelled): free the trial slot it held."""
        if trial:
            self._trial_since = None

    def record(self, healthy: bool | None, *, trial: bool) -> None:
        """One call's outcome: the plugin answered well (True), failed (False), or no outcome (None)."""
        if healthy is None:
            self.abandon(trial=trial)
        elif healthy:
            self.succeeded(trial=trial)
        else:
            self.failed(trial=trial)

    def describe(self) -> dict[str, object]:
        """The state for ``/health``: state, consecutive failures, and seconds until the next trial when open."""
        body: dict[str, object] = {"state": self.state, "failures": self._failures}
        if self._opened_at is not None and self.state == "open":
            body["retry_in_seconds"] = round(self.reset_seconds - (self._clock() - self._opened_at), 1)
        return body
