"""The circuit breaker's states on a controlled clock: closed → open → half-open → closed (or open again)."""

from __future__ import annotations

import pytest

from plexica.remote.breaker import CircuitBreaker
from plexica_sdk.errors import PluginUnavailableError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_consecutive_failures_open_it_and_a_success_in_between_resets_the_count() -> None:
    breaker = CircuitBreaker("probe", failures=3, reset_seconds=10, clock=Clock())
    for _ in range(2):
        assert breaker.admit("x") is False
        breaker.failed()
    breaker.succeeded()
    assert breaker.failures == 0
    for _ in range(3):
        breaker.admit("x")
        breaker.failed()
    assert breaker.state == "open" and breaker.opened == 1
    with pytest.raises(PluginUnavailableError) as refused:
        breaker.admit("a route")
    assert refused.value.plugin == "probe" and refused.value.hook == "a route"


def test_after_the_reset_one_trial_passes_and_its_outcome_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker("probe", failures=1, reset_seconds=10, clock=clock)
    breaker.failed()
    clock.now += 10
    assert breaker.describe()["state"] == "half_open"
    trial = breaker.admit("x")
    assert trial is True
    with pytest.raises(PluginUnavailableError):
        breaker.admit("x")  # one trial at a time
    breaker.failed(trial=True)
    assert breaker.describe() == {"state": "open", "failures": 2, "retry_in_seconds": 10.0}
    clock.now += 10
    assert breaker.admit("x") is True
    breaker.succeeded(trial=True)
    assert breaker.state == "closed" and breaker.describe() == {"state": "closed", "failures": 0}


def test_an_abandoned_trial_frees_its_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker("probe", failures=1, reset_seconds=5, clock=clock)
    breaker.failed()
    clock.now += 5
    assert breaker.admit("x") is True
    breaker.abandon(trial=True)
    assert breaker.admit("x") is True
