"""The circuit breaker of a channel: a channel that keeps failing is left alone for a while.

Closed, pushes go out. A push call that fails as a whole (5xx, timeout, no connection)
counts; a call the channel answers, even with a throttle or an item's rejection, ends the
count. After ``failures`` in a row the breaker opens for a cooldown, doubled on each trip
in a row up to a maximum: no push run calls the channel, so what it is owed keeps its
tries instead of burning them into dead letters (the failure that opens it is not counted
against the items of its call either: with as many failures as tries, an outage leaves
none). Once the cooldown is over, one run (and only one) probes it with a read of one
listing, half-open: if the channel answers, the breaker closes and the dead letters of the
failing spell are replayed; if not, it opens again, for longer. The trips in a row are
forgotten only when a push goes through, so a channel that answers reads but keeps
failing writes waits longer each time.

The state lives in PostgreSQL (``ChannelBreaker``); Redis is never the record. A healthy
channel costs nothing here: push runs read the state with the channel and write it only
when a spell of failures begins or ends.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from channels.connectors.base import ChannelError, ChannelThrottled, Connector
from channels.connectors.types import ListingRef
from channels.models import Channel, ChannelBreaker, Listing
from channels.pipeline import dead_letters

logger = logging.getLogger(__name__)

# How long the probing run has the channel to itself; past it, another run may probe.
PROBE_LEASE_S = 60.0
REPLAYED_BY = "circuit breaker"


@dataclasses.dataclass(frozen=True)
class Reading:
    """The breaker as a push run found it, read with the channel (``push.push_owed``)."""

    failures: int = 0
    open_until: dt.datetime | None = None
    trips: int = 0

    @property
    def in_a_spell(self) -> bool:
        return self.failures > 0 or self.open_until is not None or self.trips > 0


@dataclasses.dataclass(frozen=True)
class Permission:
    may_call: bool
    # This run is the half-open probe: it reads one listing before anything else
    # (``probe_channel``), and the answer decides.
    probe: bool = False


def failures_to_trip(channel: Channel) -> int:
    configured = channel.platform_settings.get("breaker_failures")
    return max(1, int(configured or settings.PUSH_BREAKER_FAILURES))


def cooldown_s(channel: Channel) -> float:
    configured = channel.platform_settings.get("breaker_cooldown_s")
    return float(configured or settings.PUSH_BREAKER_COOLDOWN_S)


def permission(*, channel_id: int, reading: Reading) -> Permission:
    """Whether a run may call the channel now."""
    if reading.open_until is None:
        return Permission(may_call=True)
    if reading.open_until > timezone.now():
        return Permission(may_call=False)
    # Half-open: the one run that moves the lease on is the probe.
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE channels_channelbreaker
                  SET open_until = statement_timestamp() + make_interval(secs => %(lease_s)s),
                      updated_at = statement_timestamp()
                WHERE channel_id = %(channel_id)s AND open_until <= statement_timestamp()
            RETURNING 1""",
            {"channel_id": channel_id, "lease_s": PROBE_LEASE_S},
        )
        won = cursor.fetchone() is not None
    return Permission(may_call=won, probe=won)


# Counts a failed call; opens the breaker on the last failure allowed, or at once when the
# call was the probe. A breaker already open (another run's call failed first) is left as
# it is. The answer: until when it is open, or NULL while it stays closed.
_RECORD_FAILURE_SQL = """
INSERT INTO channels_channelbreaker AS breaker
       (channel_id, failures, failing_since, open_until, trips, last_error, updated_at)
VALUES (%(channel_id)s, 1, statement_timestamp(),
        CASE WHEN %(probe)s OR %(threshold)s <= 1
             THEN statement_timestamp() + make_interval(secs => %(cooldown_s)s) END,
        CASE WHEN %(probe)s OR %(threshold)s <= 1 THEN 1 ELSE 0 END,
        %(error)s, statement_timestamp())
ON CONFLICT (channel_id) DO UPDATE
   SET failures = breaker.failures + 1,
       failing_since = coalesce(breaker.failing_since, statement_timestamp()),
       open_until = CASE
           WHEN breaker.open_until > statement_timestamp() AND NOT %(probe)s
           THEN breaker.open_until
           WHEN %(probe)s OR breaker.failures + 1 >= %(threshold)s
           THEN statement_timestamp() + make_interval(
                    secs => least(%(max_cooldown_s)s, %(cooldown_s)s * 2 ^ breaker.trips))
           END,
       trips = CASE
           WHEN breaker.open_until > statement_timestamp() AND NOT %(probe)s
           THEN breaker.trips
           WHEN %(probe)s OR breaker.failures + 1 >= %(threshold)s
           THEN breaker.trips + 1
           ELSE breaker.trips END,
       last_error = EXCLUDED.last_error,
       updated_at = statement_timestamp()
RETURNING open_until
"""


def record_failure(*, channel: Channel, error: str, probe: bool) -> float | None:
    """Count a push call that failed as a whole; seconds the breaker is open for, if open."""
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_FAILURE_SQL,
            {
                "channel_id": channel.pk,
                "probe": probe,
                "threshold": failures_to_trip(channel),
                "cooldown_s": cooldown_s(channel),
                "max_cooldown_s": settings.PUSH_BREAKER_MAX_COOLDOWN_S,
                "error": error[:2000],
            },
        )
        (open_until,) = cursor.fetchone()
    if open_until is None:
        return None
    open_for_s = max(0.0, (open_until - timezone.now()).total_seconds())
    logger.warning(
        "circuit breaker of %s is open for %.1f s after: %s", channel.slug, open_for_s, error
    )
    return open_for_s


# Closes the breaker; the answer is when the spell of failures began (NULL: none was on).
# Trips in a row are forgotten only when a push went through.
_RECORD_ANSWER_SQL = """
WITH spell AS (
    SELECT channel_id, failing_since FROM channels_channelbreaker
     WHERE channel_id = %(channel_id)s FOR UPDATE
)
UPDATE channels_channelbreaker AS breaker
   SET failures = 0, failing_since = NULL, open_until = NULL,
       trips = CASE WHEN %(pushed)s THEN 0 ELSE breaker.trips END,
       updated_at = statement_timestamp()
  FROM spell
 WHERE breaker.channel_id = spell.channel_id
RETURNING spell.failing_since
"""


def record_answer(*, channel: Channel, pushed: bool) -> int:
    """The channel answered a call (a push, or the probe's read): close the breaker and
    replay the spell's dead letters (those made since its first failure, still open).
    How many were replayed."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_RECORD_ANSWER_SQL, {"channel_id": channel.pk, "pushed": pushed})
            row = cursor.fetchone()
        if row is None or row[0] is None:
            return 0
        replayed = dead_letters.replay_dead_letters(
            channel_id=channel.pk, made_since=row[0], actor=REPLAYED_BY
        )
    logger.warning(
        "%s answers again: circuit breaker closed, %d dead letters replayed",
        channel.slug,
        replayed,
    )
    return replayed


def probe_channel(*, channel: Channel, connector: Connector) -> float | None:
    """The half-open call: a read of one listing (one owed a push first).

    None if the channel answered (the breaker is closed now), else the seconds it is open
    again for.
    """
    listing = (
        Listing.objects.filter(channel_id=channel.pk, is_active=True)
        .order_by(F("pending_push__id").asc(nulls_last=True), "id")
        .first()
    )
    try:
        if listing is not None:
            connector.read_quantities(
                [
                    ListingRef(
                        listing_id=listing.pk,
                        external_id=listing.external_id,
                        extra_identifiers=listing.extra_identifiers,
                    )
                ]
            )
    except ChannelThrottled:
        pass  # it answers: the rate limiter takes it from here
    except ChannelError as error:
        return record_failure(channel=channel, error=f"probe: {error}", probe=True) or 0.0
    record_answer(channel=channel, pushed=False)
    return None


def try_again_now(*, channel_ids: list[int]) -> int:
    """An operator's "try it now": open breakers become half-open; how many did."""
    return ChannelBreaker.objects.filter(
        channel_id__in=channel_ids, open_until__gt=timezone.now()
    ).update(open_until=timezone.now())
