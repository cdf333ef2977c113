"""The generic cell rate algorithm (GCRA), once in Python and once in Lua, for several partitions at once.

Each partition (a user's route class, a tenant's total) stores one number, its *theoretical arrival
time* (TAT) in microseconds: the moment its quota would be whole again. A request of cost ``c``
moves the TAT ``c`` emission intervals (``window / limit``) later; it is admitted if the new TAT
is no more than ``limit`` intervals ahead of now. A request is admitted only if *every* partition
admits it, and then every partition is charged: the per-user and the per-tenant checks are one
atomic step, so a refused request costs nothing anywhere.

The Lua twin does the same on Redis in one ``EVALSHA``, with Redis's own clock (``TIME``), so
host processes whose clocks disagree still share one limit. A key lives until its TAT passes, so
never longer than the window (one minute by default). Pure: no IO here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

__all__ = ["LUA_SCRIPT", "Step", "gcra", "interval_us"]


def interval_us(limit: int, window_seconds: int) -> int:
    """The emission interval in whole microseconds (rounded up, so never more than ``limit`` per window)."""
    return math.ceil(window_seconds * 1_000_000 / limit)


@attrs.frozen
class Step:
    """The outcome of one :func:`gcra` call.

    Attributes:
        allowed: every partition admitted the request (and was charged).
        retry_after_us: microseconds until the most constrained partition would admit it; 0 if allowed.
        tats: each partition's TAT after the step (unchanged when refused).
        remaining: how many cost-1 requests each partition would still admit.
        reset_us: microseconds until each partition's quota is whole again.
    """

    allowed: bool
    retry_after_us: int
    tats: tuple[int, ...]
    remaining: tuple[int, ...]
    reset_us: tuple[int, ...]


def gcra(tats: Sequence[int | None], now: int, partitions: Sequence[tuple[int, int, int]]) -> Step:
    """One admission decision over several partitions; ``partitions`` holds ``(limit, interval_us, cost)``.

    ``tats`` holds each partition's stored TAT (``None``: never seen or expired); ``now`` is in
    microseconds. The caller stores the returned TATs; :data:`LUA_SCRIPT` is this same function.
    """
    current: list[int] = []
    allowed, retry = True, 0
    for tat, (limit, interval, cost) in zip(tats, partitions, strict=True):
        tat = now if tat is None or tat < now else tat
        current.append(tat)
        allow_at = tat + (cost - limit) * interval
        if allow_at > now:
            allowed, retry = False, max(retry, allow_at - now)
    new, remaining, reset = [], [], []
    for tat, (limit, interval, cost) in zip(current, partitions, strict=True):
        if allowed:
            tat += cost * interval
        new.append(tat)
        remaining.append(max(0, (limit * interval - (tat - now)) // interval))
        reset.append(tat - now)
    return Step(allowed, retry, tuple(new), tuple(remaining), tuple(reset))


#: KEYS: one per partition. ARGV: ``limit, interval_us, cost`` per partition. Returns
#: ``[allowed, retry_after_us, remaining_1, reset_us_1, remaining_2, reset_us_2, ...]``.
#: Times are integers of microseconds, exact in Lua's doubles (2^53 µs is 285 years).
LUA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local n = #KEYS
local tats, limits, intervals, costs = {}, {}, {}, {}
local allowed, retry = 1, 0
for i = 1, n do
  local limit, interval, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local stored = redis.call('GET', KEYS[i])
  local tat = now
  if stored then tat = math.max(tonumber(stored), now) end
  local allow_at = tat + cost * interval - limit * interval
  if allow_at > now then
    allowed = 0
    retry = math.max(retry, allow_at - now)
  end
  tats[i], limits[i], intervals[i], costs[i] = tat, limit, interval, cost
end
local reply = {allowed, retry}
for i = 1, n do
  local tat = tats[i]
  if allowed == 1 then
    tat = tat + costs[i] * intervals[i]
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
  end
  local remaining = math.floor((limits[i] * intervals[i] - (tat - now)) / intervals[i])
  reply[2*i+1] = math.max(0, remaining)
  reply[2*i+2] = tat - now
end
return reply
"""
