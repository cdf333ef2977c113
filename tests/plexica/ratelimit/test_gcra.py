"""The pure GCRA step: bursts up to the limit, steady refill, all-or-nothing over partitions."""

from __future__ import annotations

from plexica.ratelimit.gcra import gcra, interval_us

MINUTE = 60_000_000


def test_interval_rounds_up_so_no_window_admits_more_than_the_limit() -> None:
    assert interval_us(100, 60) == 600_000
    assert interval_us(7, 60) * 7 >= MINUTE


def test_a_fresh_partition_admits_a_burst_of_its_limit_then_refuses() -> None:
    shape = [(3, interval_us(3, 60), 1)]
    tat: int | None = None
    remaining = []
    for _ in range(3):
        step = gcra([tat], 0, shape)
        assert step.allowed
        tat = step.tats[0]
        remaining.append(step.remaining[0])
    refused = gcra([tat], 0, shape)
    assert remaining == [2, 1, 0]
    assert not refused.allowed and refused.tats == (tat,)
    assert refused.retry_after_us == interval_us(3, 60)  # one request's worth of refill
    assert refused.reset_us == (MINUTE,)


def test_one_interval_later_exactly_one_more_request_fits() -> None:
    interval = interval_us(3, 60)
    shape = [(3, interval, 1)]
    tat = gcra([None], 0, [(3, interval, 3)]).tats[0]  # used up in one go (cost 3)
    assert not gcra([tat], interval - 1, shape).allowed
    later = gcra([tat], interval, shape)
    assert later.allowed and later.remaining == (0,)
    assert not gcra([later.tats[0]], interval, shape).allowed


def test_an_idle_partition_is_whole_again_after_its_window() -> None:
    shape = [(3, interval_us(3, 60), 1)]
    tat = gcra([None], 0, [(3, interval_us(3, 60), 3)]).tats[0]
    assert gcra([tat], MINUTE, shape).remaining == (2,)


def test_a_refusal_by_one_partition_charges_none() -> None:
    user, tenant = (10, interval_us(10, 60), 1), (2, interval_us(2, 60), 1)
    first = gcra([None, None], 0, [user, tenant])
    second = gcra(list(first.tats), 0, [user, tenant])
    third = gcra(list(second.tats), 0, [user, tenant])
    assert first.allowed and second.allowed and not third.allowed
    assert third.tats == second.tats
    assert third.remaining == (8, 0)
    assert third.retry_after_us == interval_us(2, 60)
