"""Per-channel coordination in Redis: the rate limiter's token bucket and push wake-ups.

A token bucket per channel, kept in Redis so every worker draws from the same one.

The bucket refills at the channel's ``rate_limit_per_s`` up to a burst of the same size
(at least 1). When the platform itself says slow down (429 + Retry-After, Shopify's
THROTTLED), ``hold_off`` empties the bucket for that long, for every worker at once; when
it says how many calls it has left before it refuses (``Connector.rate_budget``),
``observe`` keeps the bucket below that, and empty until its refill when none are left.
Redis's own clock is used, so workers on different machines agree on time.
"""

from __future__ import annotations

import functools

import redis
from django.conf import settings

# Returns 0 when the tokens were taken, else the seconds to wait before asking again.
_TAKE_TOKENS_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= wanted then
    tokens = tokens - wanted
else
    wait = (wanted - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 60)
return tostring(wait)
"""

# The platform's own count: the bucket never holds more than it says is left, and none left
# empties it until the platform refills (a longer hold-off already there is kept).
_OBSERVE_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local remaining = tonumber(ARGV[3])
local refill_in = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if remaining <= 0 then
    tokens = math.min(tokens, -refill_in * rate)
elseif remaining < tokens then
    tokens = remaining
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 60)
return 1
"""

_HOLD_OFF_LUA = """
local rate = tonumber(ARGV[1])
local seconds = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('HSET', KEYS[1], 'tokens', tostring(-seconds * rate), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(seconds) + 60)
return 1
"""


@functools.cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
    )


def _bucket_key(channel_id: int) -> str:
    return f"nventory:ratelimit:channel:{channel_id}"


def take(*, channel_id: int, rate_per_s: float, tokens: int = 1) -> float:
    """Take tokens for one call; 0.0 if granted, else how long to wait (nothing taken)."""
    rate = max(float(rate_per_s), 0.001)
    burst = max(rate, float(tokens))
    wait = _client().eval(_TAKE_TOKENS_LUA, 1, _bucket_key(channel_id), rate, burst, tokens)
    return float(wait)


def hold_off(*, channel_id: int, rate_per_s: float, seconds: float) -> None:
    """The platform asked us to wait: no worker calls this channel for ``seconds``."""
    rate = max(float(rate_per_s), 0.001)
    _client().eval(_HOLD_OFF_LUA, 1, _bucket_key(channel_id), rate, max(seconds, 0.0))


def observe(
    *, channel_id: int, rate_per_s: float, remaining_calls: int, refill_in_s: float
) -> None:
    """The platform said how many calls it will still take: the bucket holds no more than
    that, and with none left no worker calls the channel until ``refill_in_s`` passes."""
    rate = max(float(rate_per_s), 0.001)
    _client().eval(
        _OBSERVE_LUA,
        1,
        _bucket_key(channel_id),
        rate,
        max(rate, 1.0),
        int(remaining_calls),
        max(float(refill_in_s), 0.0),
    )


def reset(*, channel_id: int) -> None:
    _client().delete(_bucket_key(channel_id))


# --- wake-ups ---------------------------------------------------------------------------
# At 50 orders/s a channel would get 50 push runs queued per second, each finding little
# to do. One queued run per channel is enough: it claims whatever is owed when it starts.
# The flag expires on its own, so a run lost with its worker holds nothing back for long.
WAKE_FLAG_TTL_MS = 5000


def _claim_flags(keys: list[str]) -> list[bool]:
    """Set each flag that is not set (one round trip); whether each was set by this call."""
    pipeline = _client().pipeline(transaction=False)
    for key in keys:
        pipeline.set(key, 1, nx=True, px=WAKE_FLAG_TTL_MS)
    return [bool(claimed) for claimed in pipeline.execute()]


def _wake_key(channel_id: int) -> str:
    return f"nventory:push-wake:channel:{channel_id}"


def claim_wakes(*, channel_ids: list[int]) -> list[int]:
    """The channels of these that had no run queued (and now have one, by the caller)."""
    claimed = _claim_flags([_wake_key(channel_id) for channel_id in channel_ids])
    return [channel_id for channel_id, won in zip(channel_ids, claimed, strict=True) if won]


def release_wake(*, channel_id: int) -> None:
    _client().delete(_wake_key(channel_id))


# The same for webhook receipts: one queued ingest run takes every new receipt, so that at
# 50 orders/s a webhook costs a flag in Redis rather than a task of its own.
_INGEST_WAKE_KEY = "nventory:ingest-wake"

# A process that saw the flag taken (or took it) trusts it this long: its receipts
# committed meanwhile skip the round trip to Redis, because the run holding the flag looks
# for new receipts once more INGEST_LAST_LOOK_AFTER_S (longer) after it gives the flag
# back, and takes them then. Both spans are durations, so the processes need no common
# clock. A receipt may so wait for that last look: both stay well under the pushers'
# coalescing window (PUSH_COALESCE_WINDOW_S, 30 ms), so a sale is still counted before
# the push it would change goes out.
INGEST_FLAG_TRUSTED_S = 0.01
INGEST_LAST_LOOK_AFTER_S = 0.015


def claim_ingest_wake() -> bool:
    """Whether no ingest run was queued (and now one is, by the caller)."""
    [claimed] = _claim_flags([_INGEST_WAKE_KEY])
    return claimed


def release_ingest_wake() -> None:
    _client().delete(_INGEST_WAKE_KEY)
