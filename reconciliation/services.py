"""Reconciliation runs: compare every listing's channel figure with the master, correct, alert.

A poll reads each channel's quantities in bulk through its connector (chunks of
``CHUNK_SIZE`` listings), computes the master's listed quantity of the same chunk
(``channels.selectors.listed_quantities``) and records every mismatch as a
``Discrepancy``. On an active channel each one is corrected by owing the listing a push
(``channels.pipeline.outbox.mark_listings_owed``): the push pipeline sends the master's absolute
figure. A shadow channel is compared and never written.

Not drift: a mismatch on a listing that owes a push (a ``PendingPush`` row: the push is
due or in flight), whose asynchronous write the channel accepted and has not applied yet
(a ``SubmittedWrite``), or whose push was acknowledged after the channel was read.

Probable cause, from the evidence, first match wins:

1. ``not_on_channel``: the channel has no such item (a map problem; no correction pushed).
2. ``failed_push``: a failed or rejected attempt, or a dead letter, for the listing since
   its last acknowledged push (or ever, if none was acknowledged).
3. ``not_applied``: the channel acknowledged our last push but still shows the figure it
   held before it (that push's compare figure, else the push before it).
4. ``missed_webhook``: an order line that named this listing went unmapped since the last
   push, or one of the channel's webhooks since then failed, was quarantined or is still
   unprocessed after a minute, and the channel shows fewer units than we believe it holds
   (what an unseen sale does).
5. ``manual_edit``: we pushed before, and the channel shows neither our last figure nor
   the figure we expect it to hold after its own sales: something else set it.
6. ``unknown``: the channel holds what we expect, yet the master's figure moved without a
   push being owed (a time-boxed cap starting or ending does this), or nventory never
   pushed this listing. ``bundle_miscount`` needs the bill of materials (TODO #4).

A listing that drifted in ``RECONCILIATION_REPEAT_RUNS`` consecutive runs (default 3) is
flagged ``repeated``. A run whose drift exceeds ``RECONCILIATION_DRIFT_ALERT_PERCENT`` of
the listings it could judge (default 2) emails the operators and keeps ``alerted_at``.

Runs lock per channel with a PostgreSQL advisory try-lock: a second run while one is going
does nothing. Holding the lock proves any run still marked running is dead (its session,
and so its lock, is gone): it is closed as failed, and the new run does the work again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Count, F, Max
from django.template.loader import render_to_string
from django.utils import timezone

from bundles import selectors as bundle_selectors
from channels.connectors.base import ChannelError
from channels.connectors.registry import get_connector
from channels.connectors.types import Capability, ListingRef
from channels.models import (
    Channel,
    ChannelOperation,
    DeadLetter,
    Listing,
    PendingPush,
    PushAttempt,
    UnmappedLine,
    WebhookReceipt,
)
from channels.pipeline import ingest, outbox, receive
from inventory import services as inventory_services
from inventory.models import EventSource
from nventory import permissions
from nventory.celery import app
from nventory.errors import ApplicationError, Conflict
from nventory.permissions import Actor
from reconciliation import selectors
from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.selectors import ListingRow

logger = logging.getLogger(__name__)

# 10 read calls of 250 ids; small enough to show progress, large enough to keep the
# database work per chunk to a handful of statements.
CHUNK_SIZE = 2500
DEFAULT_REPEAT_RUNS = 3
DEFAULT_DRIFT_ALERT_PERCENT = 2.0
# A receipt still unprocessed after this long was lost by the queue (the sweep retries it).
STUCK_RECEIPT_S = 60
COMPARING_KINDS = (ReconciliationRun.Kind.POLL, ReconciliationRun.Kind.SHADOW_COMPARE)

Progress = Callable[[ReconciliationRun], None]


def repeat_runs() -> int:
    return int(getattr(settings, "RECONCILIATION_REPEAT_RUNS", DEFAULT_REPEAT_RUNS))


def drift_alert_percent() -> float:
    return float(
        getattr(settings, "RECONCILIATION_DRIFT_ALERT_PERCENT", DEFAULT_DRIFT_ALERT_PERCENT)
    )


def operator_emails() -> list[str]:
    configured = getattr(settings, "RECONCILIATION_OPERATOR_EMAILS", None)
    if configured is None:
        configured = getattr(settings, "OPERATOR_EMAILS", [])
    return list(configured)


# --- locking ------------------------------------------------------------------------------


def lock_key(channel_id: int) -> int:
    """The advisory lock id of a channel's reconciliation (a signed 64-bit hash)."""
    digest = hashlib.blake2b(f"reconciliation:{channel_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def channel_lock(channel_id: int) -> Iterator[bool]:
    """Try the channel's session-level advisory lock; yields whether it was taken."""
    key = lock_key(channel_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        row = cursor.fetchone()
    taken = bool(row and row[0])
    try:
        yield taken
    finally:
        if taken:
            # A broken connection has released the lock with its session already.
            with contextlib.suppress(Exception), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _close_dead_runs(channel: Channel, kinds: Sequence[str]) -> None:
    ReconciliationRun.objects.filter(
        channel=channel, kind__in=kinds, status=ReconciliationRun.Status.RUNNING
    ).update(
        status=ReconciliationRun.Status.FAILED,
        finished_at=timezone.now(),
        error="Superseded: the process running it stopped before finishing.",
    )


# --- polls --------------------------------------------------------------------------------


def reconcile_channel(
    *,
    channel_id: int,
    kind: str = ReconciliationRun.Kind.POLL,
    period_date: dt.date | None = None,
    progress: Progress | None = None,
) -> ReconciliationRun | None:
    """Compare one channel with the master; correct it if active. None if locked or paused.

    Safe to overlap (try-lock) and to repeat. A failure is recorded on the run, not raised.
    """
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None or channel.mode == Channel.Mode.PAUSED:
        return None
    with channel_lock(channel.pk) as taken:
        if not taken:
            logger.info("reconciliation of %s already running; skipped", channel.slug)
            return None
        _close_dead_runs(channel, COMPARING_KINDS)
        run = ReconciliationRun.objects.create(
            channel=channel,
            kind=kind,
            channel_mode=channel.mode,
            period_date=period_date,
            listings_total=Listing.objects.filter(channel=channel, is_active=True).count(),
        )
        try:
            _compare(run, channel, progress)
        except Exception as error:
            logger.exception("reconciliation of %s failed", channel.slug)
            ReconciliationRun.objects.filter(pk=run.pk).update(
                status=ReconciliationRun.Status.FAILED,
                finished_at=timezone.now(),
                error=f"{type(error).__name__}: {error}"[:2000],
            )
        run.refresh_from_db()
        if run.status == ReconciliationRun.Status.DONE:
            _alert_if_drifting(run)
        if progress is not None:
            progress(run)
        return run


def reconcile_channels(
    *,
    channel_ids: Sequence[int] | None = None,
    max_workers: int = 5,
    progress: Progress | None = None,
) -> list[ReconciliationRun]:
    """Poll every active and shadow channel (or those given), several at once.

    Each channel runs on its own thread and database connection; reading a channel is
    mostly waiting on its API, so the channels overlap.
    """
    channels = Channel.objects.filter(mode__in=[Channel.Mode.ACTIVE, Channel.Mode.SHADOW])
    if channel_ids is not None:
        channels = channels.filter(pk__in=list(channel_ids))
    ids = list(channels.order_by("pk").values_list("pk", flat=True))
    if max_workers <= 1 or len(ids) <= 1:
        runs = [reconcile_channel(channel_id=channel_id, progress=progress) for channel_id in ids]
    else:
        with ThreadPoolExecutor(max_workers=min(max_workers, len(ids))) as pool:
            runs = list(pool.map(lambda channel_id: _in_own_connection(channel_id, progress), ids))
    return [run for run in runs if run is not None]


def _in_own_connection(channel_id: int, progress: Progress | None) -> ReconciliationRun | None:
    try:
        return reconcile_channel(channel_id=channel_id, progress=progress)
    finally:
        connection.close()


@dataclass(frozen=True)
class _Evidence:
    last_pushed_quantity: int | None
    last_pushed_at: dt.datetime | None
    expected_channel_quantity: int | None
    owed: bool
    category: str


def _compare(run: ReconciliationRun, channel: Channel, progress: Progress | None) -> None:
    connector = get_connector(channel)
    correct = channel.mode == Channel.Mode.ACTIVE
    rows = selectors.listing_rows(channel=channel)
    rules = selectors.channel_rules(channel=channel)
    location_ids = list(channel.locations.values_list("pk", flat=True))
    streaks = _previous_streaks(run)
    polled = not connector.has(Capability.ORDER_POLL)
    per_location = connector.has(Capability.LOCATION_QUANTITIES)
    for start in range(0, len(rows), CHUNK_SIZE):
        chunk = rows[start : start + CHUNK_SIZE]
        read_at = timezone.now()
        shown = connector.read_quantities(
            [
                ListingRef(
                    listing_id=row.pk,
                    external_id=row.external_id,
                    extra_identifiers=row.extra_identifiers,
                )
                for row in chunk
            ]
        )
        expected = selectors.expected_listed_quantities(
            channel=channel,
            location_ids=location_ids,
            rules=rules,
            rows=chunk,
            now=read_at,
            per_location=per_location,
        )
        if correct and not polled and _shows_fewer(chunk, shown, expected):
            polled = True
            if _recover_missed_orders(channel):
                # The missed orders moved the master: compare with its figures of now.
                expected = selectors.expected_listed_quantities(
                    channel=channel,
                    location_ids=location_ids,
                    rules=rules,
                    rows=chunk,
                    now=timezone.now(),
                    per_location=per_location,
                )
        with transaction.atomic():
            found, corrected, skipped = _compare_chunk(
                run,
                channel,
                chunk,
                shown,
                expected,
                # A push acknowledged within the platform's read lag may not show yet.
                read_at - dt.timedelta(seconds=connector.read_after_write_lag_s),
                streaks,
                correct=correct,
            )
            ReconciliationRun.objects.filter(pk=run.pk).update(
                listings_checked=F("listings_checked") + len(chunk),
                found=F("found") + found,
                corrected=F("corrected") + corrected,
                skipped_in_flight=F("skipped_in_flight") + skipped,
            )
        if progress is not None:
            run.refresh_from_db()
            progress(run)
    run.refresh_from_db()
    judged = run.listings_checked - run.skipped_in_flight
    ReconciliationRun.objects.filter(pk=run.pk).update(
        status=ReconciliationRun.Status.DONE,
        finished_at=timezone.now(),
        drift_percent=round(100.0 * run.found / judged, 3) if judged else 0.0,
    )


def _shows_fewer(
    chunk: Sequence[ListingRow], shown: dict[int, int | None], expected: dict[int, int]
) -> bool:
    return any(
        (actual := shown.get(listing.pk)) is not None and actual < expected[listing.pk]
        for listing in chunk
    )


def _recover_missed_orders(channel: Channel) -> int:
    """Read the channel's recent orders and ingest, now, those never received: a channel
    that shows fewer units than the master may have sold them. How many were ingested."""
    try:
        receipt_ids = receive.poll_orders(channel_id=channel.pk)
    except ChannelError as error:
        logger.warning("cannot read the orders of %s: %s", channel.slug, error)
        return 0
    for receipt_id in receipt_ids:
        ingest.process_receipt(receipt_id=receipt_id)
    if receipt_ids:
        logger.warning(
            "reconciliation of %s recovered %d order events never received",
            channel.slug,
            len(receipt_ids),
        )
    return len(receipt_ids)


def _compare_chunk(
    run: ReconciliationRun,
    channel: Channel,
    chunk: Sequence[ListingRow],
    shown: dict[int, int | None],
    expected: dict[int, int],
    read_at: dt.datetime,
    streaks: dict[int, int],
    *,
    correct: bool,
) -> tuple[int, int, int]:
    """Record the chunk's discrepancies; (found, corrected, skipped as in flight)."""
    mismatched = [listing for listing in chunk if shown.get(listing.pk) != expected[listing.pk]]
    if not mismatched:
        return 0, 0, 0
    evidence = _evidence(mismatched)
    judged = [
        listing
        for listing in mismatched
        if not evidence[listing.pk].owed
        and not _pushed_since(evidence[listing.pk].last_pushed_at, read_at)
    ]
    skipped = len(mismatched) - len(judged)
    causes = _infer_causes(channel, judged, shown, evidence)
    threshold = repeat_runs()
    discrepancies = []
    for listing in judged:
        state = evidence[listing.pk]
        cause, why = causes[listing.pk]
        consecutive = streaks.get(listing.pk, 0) + 1
        discrepancies.append(
            Discrepancy(
                run=run,
                channel=channel,
                listing_id=listing.pk,
                sku_id=listing.sku_id,
                category=state.category,
                expected=expected[listing.pk],
                actual=shown.get(listing.pk),
                last_pushed_quantity=state.last_pushed_quantity,
                last_pushed_at=state.last_pushed_at,
                cause=cause,
                evidence=why,
                consecutive_runs=consecutive,
                repeated=consecutive >= threshold,
                corrected=correct
                and _may_correct(cause, shown.get(listing.pk), expected[listing.pk]),
            )
        )
    Discrepancy.objects.bulk_create(discrepancies)
    to_correct = [d.listing_id for d in discrepancies if d.corrected]
    if to_correct:
        outbox.mark_listings_owed(listing_ids=to_correct)
    return len(discrepancies), len(to_correct), skipped


def _may_correct(cause: str, actual: int | None, expected: int) -> bool:
    """Whether to push the master's figure over the channel's.

    Not where the channel has no such item (a map problem), and never above what the
    channel shows when the evidence says it sold units nventory never heard of: those
    units may be gone, and its recent orders were read without explaining them.
    """
    if cause == Discrepancy.Cause.NOT_ON_CHANNEL:
        return False
    return not (
        cause == Discrepancy.Cause.MISSED_WEBHOOK and actual is not None and actual < expected
    )


def _pushed_since(last_pushed_at: dt.datetime | None, read_at: dt.datetime) -> bool:
    # The read may have raced a push that finished after it: the figure read is stale.
    return last_pushed_at is not None and last_pushed_at >= read_at


def _previous_streaks(run: ReconciliationRun) -> dict[int, int]:
    """Consecutive-run counts of the listings that drifted in the channel's previous run."""
    previous = (
        ReconciliationRun.objects.filter(
            channel_id=run.channel_id,
            kind__in=COMPARING_KINDS,
            status=ReconciliationRun.Status.DONE,
            started_at__lte=run.started_at,
        )
        .exclude(pk=run.pk)
        .order_by("-started_at", "-pk")
        .first()
    )
    if previous is None:
        return {}
    return dict(previous.discrepancies.values_list("listing_id", "consecutive_runs"))


_EVIDENCE_SQL = """
SELECT listing.id, COALESCE(sku.category, ''),
       pending.id IS NOT NULL OR submitted.listing_id IS NOT NULL,
       state.last_pushed_quantity, state.last_pushed_at, state.expected_channel_quantity
  FROM channels_listing AS listing
  LEFT JOIN inventory_sku AS sku ON sku.id = listing.sku_id
  LEFT JOIN channels_pendingpush AS pending ON pending.listing_id = listing.id
  LEFT JOIN channels_submittedwrite AS submitted ON submitted.listing_id = listing.id
  LEFT JOIN channels_listingsyncstate AS state ON state.listing_id = listing.id
 WHERE listing.id = ANY(%(ids)s)
"""

# The two latest acknowledged pushes of each listing: what the channel held before the last
# one is its compare figure or, when it was sent without one, the push before it.
_LAST_APPLIED_SQL = """
SELECT listing_id, target_quantity, compare_quantity, acked_at, rank
  FROM (SELECT listing_id, target_quantity, compare_quantity, acked_at,
               row_number() OVER (PARTITION BY listing_id ORDER BY sent_at DESC, id DESC)
                   AS rank
          FROM channels_pushattempt
         WHERE listing_id = ANY(%(ids)s) AND outcome = 'applied') AS ranked
 WHERE rank <= 2
"""


def _evidence(listings: Sequence[ListingRow]) -> dict[int, _Evidence]:
    with connection.cursor() as cursor:
        cursor.execute(_EVIDENCE_SQL, {"ids": [listing.pk for listing in listings]})
        rows = cursor.fetchall()
    return {
        row[0]: _Evidence(
            category=row[1],
            owed=row[2],
            last_pushed_quantity=row[3],
            last_pushed_at=row[4],
            expected_channel_quantity=row[5],
        )
        for row in rows
    }


def _infer_causes(
    channel: Channel,
    listings: Sequence[ListingRow],
    shown: dict[int, int | None],
    evidence: dict[int, _Evidence],
) -> dict[int, tuple[str, str]]:
    """Each listing's probable cause and the evidence for it (see the module docstring)."""
    if not listings:
        return {}
    ids = [listing.pk for listing in listings]
    failures: dict[int, dt.datetime] = dict(
        PushAttempt.objects.filter(
            listing_id__in=ids,
            outcome__in=[PushAttempt.Outcome.FAILED, PushAttempt.Outcome.REJECTED],
        )
        .values("listing_id")
        .annotate(last=Max("sent_at"))
        .values_list("listing_id", "last")
    )
    dead_letters: dict[int, dt.datetime] = dict(
        DeadLetter.objects.filter(listing_id__in=ids)
        .values("listing_id")
        .annotate(last=Max("created_at"))
        .values_list("listing_id", "last")
    )
    applied: dict[int, dict[int, tuple[int, int | None, dt.datetime]]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_LAST_APPLIED_SQL, {"ids": ids})
        for listing_id, target, compare, acked_at, rank in cursor.fetchall():
            applied.setdefault(listing_id, {})[rank] = (target, compare, acked_at)
    oldest_push = min(
        (e.last_pushed_at for e in evidence.values() if e.last_pushed_at is not None),
        default=None,
    )
    troubled_receipts = _troubled_receipt_times(channel, since=oldest_push)
    unmapped = _unmapped_line_times(channel, listings, since=oldest_push)

    causes: dict[int, tuple[str, str]] = {}
    for listing in listings:
        state = evidence[listing.pk]
        actual = shown.get(listing.pk)
        since = state.last_pushed_at
        causes[listing.pk] = _cause(
            actual=actual,
            state=state,
            failure_at=_after(failures.get(listing.pk), since),
            dead_letter_at=_after(dead_letters.get(listing.pk), since),
            last_applied=applied.get(listing.pk, {}),
            receipt_trouble_at=_after(max(troubled_receipts, default=None), since),
            unmapped_at=_after(unmapped.get(listing.pk), since),
        )
    return causes


def _after(moment: dt.datetime | None, since: dt.datetime | None) -> dt.datetime | None:
    if moment is None or (since is not None and moment <= since):
        return None
    return moment


def _cause(
    *,
    actual: int | None,
    state: _Evidence,
    failure_at: dt.datetime | None,
    dead_letter_at: dt.datetime | None,
    last_applied: dict[int, tuple[int, int | None, dt.datetime]],
    receipt_trouble_at: dt.datetime | None,
    unmapped_at: dt.datetime | None,
) -> tuple[str, str]:
    cause = Discrepancy.Cause
    if actual is None:
        return cause.NOT_ON_CHANNEL, "The channel has no item with this listing's id."
    if dead_letter_at is not None:
        return (
            cause.FAILED_PUSH,
            f"A push became a dead letter at {dead_letter_at:%Y-%m-%d %H:%M:%S}.",
        )
    if failure_at is not None:
        return cause.FAILED_PUSH, (
            f"A push failed or was rejected at {failure_at:%Y-%m-%d %H:%M:%S} and none "
            "has been acknowledged since."
        )
    if 1 in last_applied:
        target, compare, acked_at = last_applied[1]
        before = compare if compare is not None else last_applied.get(2, (None,))[0]
        if actual != target and before is not None and actual == before:
            return cause.NOT_APPLIED, (
                f"The channel acknowledged {target} at {acked_at:%Y-%m-%d %H:%M:%S} but "
                f"still shows {before}, its figure before that push."
            )
    expected_there = state.expected_channel_quantity
    if unmapped_at is not None:
        return cause.MISSED_WEBHOOK, (
            f"An order line naming this item went unmapped at {unmapped_at:%Y-%m-%d %H:%M:%S}."
        )
    if receipt_trouble_at is not None and expected_there is not None and actual < expected_there:
        return cause.MISSED_WEBHOOK, (
            f"The channel shows {expected_there - actual} fewer units than it should after "
            f"its own sales, and one of its webhooks failed, was quarantined or is stuck "
            f"(latest at {receipt_trouble_at:%Y-%m-%d %H:%M:%S})."
        )
    if state.last_pushed_quantity is None:
        return cause.UNKNOWN, "nventory never had a push to this listing acknowledged."
    if actual not in (state.last_pushed_quantity, expected_there):
        return cause.MANUAL_EDIT, (
            f"The channel shows {actual}: neither our last push ({state.last_pushed_quantity}) "
            f"nor the figure expected after its own sales ({expected_there}), and no webhook "
            "explains it."
        )
    return cause.UNKNOWN, (
        "The channel holds the figure we last gave it; the master's listed quantity moved "
        "without a push being owed (for example a time-boxed cap starting or ending)."
    )


def _troubled_receipt_times(channel: Channel, *, since: dt.datetime | None) -> list[dt.datetime]:
    stuck_before = timezone.now() - dt.timedelta(seconds=STUCK_RECEIPT_S)
    receipts = WebhookReceipt.objects.filter(channel=channel)
    if since is not None:
        receipts = receipts.filter(received_at__gt=since)
    troubled = receipts.filter(
        status__in=[WebhookReceipt.Status.FAILED, WebhookReceipt.Status.QUARANTINED]
    ) | receipts.filter(status=WebhookReceipt.Status.RECEIVED, received_at__lt=stuck_before)
    return list(troubled.values_list("received_at", flat=True)[:1000])


def _unmapped_line_times(
    channel: Channel, listings: Sequence[ListingRow], *, since: dt.datetime | None
) -> dict[int, dt.datetime]:
    """The latest unmapped order line per listing whose identifiers name it."""
    lines = UnmappedLine.objects.filter(channel=channel)
    if since is not None:
        lines = lines.filter(created_at__gt=since)
    lines = lines.order_by("created_at")[:1000]
    by_identifier: dict[str, int] = {}
    for listing in listings:
        names = [listing.external_id, *map(str, listing.extra_identifiers.values())]
        for name in names:
            if name:
                by_identifier[name.rsplit("/", 1)[-1]] = listing.pk
    latest: dict[int, dt.datetime] = {}
    for line in lines:
        for value in line.identifiers.values():
            listing_id = by_identifier.get(str(value).rsplit("/", 1)[-1])
            if listing_id is not None:
                latest[listing_id] = line.created_at
    return latest


def _alert_if_drifting(run: ReconciliationRun) -> None:
    if run.drift_percent is None or run.drift_percent <= drift_alert_percent():
        return
    recipients = operator_emails()
    causes = dict(
        run.discrepancies.values("cause").annotate(count=Count("pk")).values_list("cause", "count")
    )
    context = {
        "run": run,
        "channel": run.channel,
        "threshold": drift_alert_percent(),
        "causes": [(Discrepancy.Cause(name).label, count) for name, count in causes.items()],
        "examples": list(run.discrepancies.select_related("sku", "listing")[:20]),
    }
    if recipients:
        send_mail(
            subject=f"[nventory] Drift alert: {run.channel.name} at {run.drift_percent:.2f}%",
            message=render_to_string("reconciliation/drift_alert.txt", context),
            from_email=None,
            recipient_list=recipients,
            html_message=render_to_string("reconciliation/drift_alert.html", context),
        )
    else:
        logger.warning("drift alert for %s but no operator emails configured", run.channel.slug)
    ReconciliationRun.objects.filter(pk=run.pk).update(alerted_at=timezone.now())
    run.alerted_at = timezone.now()


# --- full sync ----------------------------------------------------------------------------


def start_full_sync(*, channel_ids: Sequence[int] | None = None) -> list[ReconciliationRun]:
    """Owe every active listing of every active channel a push; one progress run each.

    The push pipeline sends them in batches within the channel's rate limit; a repeated
    full sync only re-marks rows already owed (coalesced).
    """
    channels = Channel.objects.filter(mode=Channel.Mode.ACTIVE)
    if channel_ids is not None:
        channels = channels.filter(pk__in=list(channel_ids))
    runs = []
    for channel in channels.order_by("pk"):
        with channel_lock(channel.pk) as taken:
            if not taken:
                continue
            with transaction.atomic():
                ReconciliationRun.objects.filter(
                    channel=channel,
                    kind=ReconciliationRun.Kind.FULL_SYNC,
                    status=ReconciliationRun.Status.RUNNING,
                ).update(
                    status=ReconciliationRun.Status.FAILED,
                    finished_at=timezone.now(),
                    error="Superseded by a newer full sync.",
                )
                outbox.mark_channel_owed(channel=channel)
                total = Listing.objects.filter(channel=channel, is_active=True).count()
                runs.append(
                    ReconciliationRun.objects.create(
                        channel=channel,
                        kind=ReconciliationRun.Kind.FULL_SYNC,
                        channel_mode=channel.mode,
                        listings_total=total,
                        figures={"owed_at_start": total},
                    )
                )
    return runs


def refresh_full_syncs() -> list[ReconciliationRun]:
    """Bring running full syncs' progress up to date; a drained channel's run is done.

    Progress counts the channel's owed pushes: later changes owe pushes too, so it is an
    upper bound on what the full sync still has to send.
    """
    runs = list(
        ReconciliationRun.objects.filter(
            kind=ReconciliationRun.Kind.FULL_SYNC, status=ReconciliationRun.Status.RUNNING
        ).select_related("channel")
    )
    for run in runs:
        remaining = PendingPush.objects.filter(channel_id=run.channel_id).count()
        run.listings_checked = max(0, run.listings_total - remaining)
        run.figures = {**run.figures, "remaining": remaining}
        if remaining == 0:
            run.status = ReconciliationRun.Status.DONE
            run.finished_at = timezone.now()
        run.save(update_fields=["listings_checked", "figures", "status", "finished_at"])
    return runs


# --- settling a discrepancy (an operator's decision) -------------------------------------


class DiscrepancySettled(Conflict):
    code = "discrepancy_settled"


class DiscrepancySuperseded(Conflict):
    code = "discrepancy_superseded"


class ChannelFigureUnusable(Conflict):
    code = "channel_figure_unusable"


def _lock_unsettled(discrepancy_id: int) -> Discrepancy:
    discrepancy = (
        Discrepancy.objects.select_for_update(of=("self",))
        .select_related("channel", "listing")
        .get(pk=discrepancy_id)
    )
    if discrepancy.settlement:
        raise DiscrepancySettled(
            f"Discrepancy {discrepancy_id} was settled by {discrepancy.settled_by}: "
            f"{discrepancy.get_settlement_display()}.",
            extra={"status": discrepancy.settlement},
        )
    return discrepancy


def _settle(discrepancy: Discrepancy, settlement: str, actor: Actor) -> None:
    discrepancy.settlement = settlement
    discrepancy.settled_at = timezone.now()
    discrepancy.settled_by = actor.get_username()
    discrepancy.save(update_fields=["settlement", "settled_at", "settled_by", "adjustment_event"])


@transaction.atomic
def accept_channel_figure(
    *, discrepancy_id: int, actor: Actor, location_id: int | None = None
) -> Discrepancy:
    """Take the channel's figure as the truth: adjust the SKU's on hand by what the channel
    showed less what the master listed, at ``location_id`` (one the channel sells from; by
    default the first of them), through ``inventory.services`` like every stock change.

    Once only: the adjustment's idempotency key is the discrepancy's, and the discrepancy
    is locked and settled in the same transaction. With no buffer the channel's listing
    then matches; a percentage buffer lists a share of the difference. Refused (409):
    settled already (DiscrepancySettled), a newer discrepancy of the listing exists
    (DiscrepancySuperseded), or there is no figure to take (the item was not on the
    channel, the listing has no SKU, or the SKU is a bundle, which holds no stock of its
    own: ChannelFigureUnusable); a decrease beyond what is available is refused by the
    inventory service (InsufficientStock).
    """
    permissions.require(actor, permissions.SETTLE_DISCREPANCIES)
    discrepancy = _lock_unsettled(discrepancy_id)
    if (
        Discrepancy.objects.filter(listing_id=discrepancy.listing_id)
        .filter(detected_at__gt=discrepancy.detected_at)
        .exists()
    ):
        raise DiscrepancySuperseded(
            "A later reconciliation found this listing differ again: settle that one."
        )
    sku_id = discrepancy.listing.sku_id
    if discrepancy.actual is None or sku_id is None:
        raise ChannelFigureUnusable("The channel showed no figure for a SKU to take.")
    if bundle_selectors.bundle_ids_among(sku_ids=[sku_id]):
        raise ChannelFigureUnusable(
            "The SKU is a bundle: adjust its components, then push the master's figure."
        )
    channel_location_ids = list(
        discrepancy.channel.locations.order_by("pk").values_list("pk", flat=True)
    )
    if location_id is None and channel_location_ids:
        location_id = channel_location_ids[0]
    if location_id is None or location_id not in channel_location_ids:
        raise ChannelFigureUnusable("Pick a location the channel sells from.")
    event = inventory_services.adjust_stock(
        sku_id=sku_id,
        location_id=location_id,
        delta=discrepancy.actual - discrepancy.expected,
        context=inventory_services.EventContext(
            idempotency_key=f"reconciliation:discrepancy:{discrepancy.pk}:accept",
            source=EventSource.RECONCILIATION,
            actor=actor.get_username(),
            external_reference=f"discrepancy {discrepancy.pk}",
            reason=f"{discrepancy.channel.name} showed {discrepancy.actual} where the master "
            f"listed {discrepancy.expected}: the channel's figure accepted.",
        ),
    )
    discrepancy.adjustment_event = event
    _settle(discrepancy, Discrepancy.Settlement.ACCEPTED_CHANNEL, actor)
    return discrepancy


@transaction.atomic
def push_master_figure(*, discrepancy_id: int, actor: Actor) -> Discrepancy:
    """Owe the listing a push of the master's figure as it is when sent (reconciliation
    already does this on an active channel; a shadow or paused channel pushes once it is
    active). Locks the discrepancy; DiscrepancySettled (409) if it was settled already."""
    permissions.require(actor, permissions.SETTLE_DISCREPANCIES)
    discrepancy = _lock_unsettled(discrepancy_id)
    outbox.mark_listings_owed(listing_ids=[discrepancy.listing_id])
    _settle(discrepancy, Discrepancy.Settlement.PUSHED_MASTER, actor)
    return discrepancy


POLL_CHANNEL_TASK = "reconciliation.poll_channel_task"


class ChannelNotSyncable(ApplicationError):
    code = "channel_not_syncable"


@transaction.atomic
def run_poll_now(*, actor: Any, channel_id: int) -> None:
    """An operator asks for a reconciliation poll of one channel now.

    Needs ``permissions.MANAGE_CHANNELS``. Records who asked; the poll runs in a worker once
    this commits (its run shows the progress). A paused channel is not polled
    (``ChannelNotSyncable``); a poll already running makes this one skip (per-channel lock).
    """
    permissions.require(actor, permissions.MANAGE_CHANNELS)
    channel = Channel.objects.get(pk=channel_id)
    if channel.mode == Channel.Mode.PAUSED:
        raise ChannelNotSyncable("A paused channel is not polled: switch it to shadow or active.")
    ChannelOperation.objects.create(
        channel=channel, action=ChannelOperation.Action.POLL_NOW, actor=actor.get_username()
    )
    # By name: the tasks module imports this one.
    transaction.on_commit(lambda: app.send_task(POLL_CHANNEL_TASK, args=[channel_id]), robust=True)


@transaction.atomic
def run_full_sync_now(*, actor: Any, channel_id: int) -> ReconciliationRun:
    """An operator asks for a full sync of one active channel now: every active listing is
    owed a push, and a full-sync run counts them down.

    Needs ``permissions.MANAGE_CHANNELS``. Records who asked. ``ChannelNotSyncable`` unless
    the channel is active, or when a poll or sync of it holds its lock.
    """
    permissions.require(actor, permissions.MANAGE_CHANNELS)
    channel = Channel.objects.get(pk=channel_id)
    if channel.mode != Channel.Mode.ACTIVE:
        raise ChannelNotSyncable("Only an active channel is sent its quantities.")
    runs = start_full_sync(channel_ids=[channel_id])
    if not runs:
        raise ChannelNotSyncable("A reconciliation of this channel is running: try again soon.")
    ChannelOperation.objects.create(
        channel=channel, action=ChannelOperation.Action.FULL_SYNC_NOW, actor=actor.get_username()
    )
    return runs[0]
