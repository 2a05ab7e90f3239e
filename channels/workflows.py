"""An operator's handling of what went wrong in the sync: dead letters, oversell incidents,
order lines that matched no listing (and listings with no SKU), webhook receipts that
failed or were quarantined.

Each service acts for a person (``actor``): it checks that person's permission
(``nventory.permissions``) before it changes anything, and records on the row it acts on
who did it and when. The console, the API and the admin all call these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from channels import services
from channels.connectors.registry import get_connector
from channels.models import (
    NO_LISTING,
    REPROCESSABLE_RECEIPT_STATUSES,
    DeadLetter,
    Listing,
    OversellIncident,
    UnmappedLine,
    WebhookReceipt,
)
from channels.pipeline import dead_letters, enqueue, ingest, outbox
from nventory import permissions
from nventory.errors import ApplicationError, Conflict
from nventory.permissions import Actor

# -----------------------------------------------------------------------------------------
# Dead letters
# -----------------------------------------------------------------------------------------


class ReasonRequired(ApplicationError):
    code = "reason_required"


@transaction.atomic
def replay_dead_letter(*, dead_letter_id: int, actor: Actor) -> DeadLetter:
    """Owe the dead letter's listing a fresh push, with fresh tries: the master's quantity
    of the moment it is sent, not the one that failed.

    Locks the dead letter; DeadLetterNotOpen (409) if it was replayed or discarded already,
    DoesNotExist if there is none.
    """
    permissions.require(actor, permissions.HANDLE_DEAD_LETTERS)
    return dead_letters.replay_dead_letter(
        dead_letter_id=dead_letter_id, actor=actor.get_username()
    )


@transaction.atomic
def replay_dead_letters(*, dead_letter_ids: Iterable[int], actor: Actor) -> list[DeadLetter]:
    """Replay every open dead letter among these at once; the ones replayed.

    Locks them in primary-key order. Those replayed or discarded already (by someone else a
    moment ago, too) are left as they are, so a second click replays nothing twice.
    """
    permissions.require(actor, permissions.HANDLE_DEAD_LETTERS)
    letters = _lock_open_dead_letters(dead_letter_ids)
    if not letters:
        return []
    outbox.mark_listings_owed(listing_ids=[letter.listing_id for letter in letters])
    return _close_dead_letters(
        letters, status=DeadLetter.Status.REPLAYED, replayed_by=actor.get_username()
    )


@transaction.atomic
def discard_dead_letters(
    *, dead_letter_ids: Iterable[int], reason: str, actor: Actor
) -> list[DeadLetter]:
    """Close every open dead letter among these without pushing it again, with the reason;
    the ones discarded.

    ReasonRequired (400) for a blank reason. Locks them in primary-key order; those replayed
    or discarded already are left as they are. The listing owes nothing afterwards: its next
    stock or rule change is pushed as any other.
    """
    permissions.require(actor, permissions.HANDLE_DEAD_LETTERS)
    reason = reason.strip()
    if not reason:
        raise ReasonRequired("Say why the dead letter is discarded.")
    letters = _lock_open_dead_letters(dead_letter_ids)
    return _close_dead_letters(
        letters,
        status=DeadLetter.Status.DISCARDED,
        discarded_by=actor.get_username(),
        discard_reason=reason,
    )


@transaction.atomic
def discard_dead_letter(*, dead_letter_id: int, reason: str, actor: Actor) -> DeadLetter:
    """``discard_dead_letters`` for one: DeadLetterNotOpen (409) if it is not open,
    DoesNotExist if there is none."""
    discarded = discard_dead_letters(dead_letter_ids=[dead_letter_id], reason=reason, actor=actor)
    if discarded:
        return discarded[0]
    letter = DeadLetter.objects.get(pk=dead_letter_id)
    raise dead_letters.DeadLetterNotOpen(
        f"Dead letter {dead_letter_id} is {letter.status}.", extra={"status": letter.status}
    )


def _lock_open_dead_letters(dead_letter_ids: Iterable[int]) -> list[DeadLetter]:
    # The status is checked again on the row as it is once locked (READ COMMITTED), so a
    # letter another operator closed while this waited is not taken.
    return list(
        DeadLetter.objects.select_for_update()
        .filter(pk__in=set(dead_letter_ids), status=DeadLetter.Status.OPEN)
        .order_by("pk")
    )


def _close_dead_letters(
    letters: list[DeadLetter], *, status: str, **recorded: str
) -> list[DeadLetter]:
    now = timezone.now()
    at_field = "replayed_at" if status == DeadLetter.Status.REPLAYED else "discarded_at"
    DeadLetter.objects.filter(pk__in=[letter.pk for letter in letters]).update(
        status=status, **{at_field: now}, **recorded
    )
    for letter in letters:
        letter.status = status
        setattr(letter, at_field, now)
        for name, value in recorded.items():
            setattr(letter, name, value)
    return letters


# -----------------------------------------------------------------------------------------
# Oversell incidents
# -----------------------------------------------------------------------------------------


class IncidentResolved(Conflict):
    code = "incident_resolved"


class RootCauseRequired(ApplicationError):
    code = "root_cause_required"


def _lock_incident(incident_id: int) -> OversellIncident:
    return OversellIncident.objects.select_for_update().get(pk=incident_id)


@transaction.atomic
def acknowledge_oversell(*, incident_id: int, actor: Actor) -> OversellIncident:
    """Mark the incident seen by ``actor``; the first acknowledgement is the one kept.

    Locks the incident; IncidentResolved (409) once it is resolved.
    """
    permissions.require(actor, permissions.HANDLE_OVERSELLS)
    incident = _lock_incident(incident_id)
    if incident.resolved_at is not None:
        raise IncidentResolved(f"Oversell incident {incident_id} is resolved.")
    if incident.acknowledged_at is None:
        _acknowledge(incident, actor)
        incident.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return incident


@transaction.atomic
def note_oversell_root_cause(
    *, incident_id: int, root_cause: str, actor: Actor
) -> OversellIncident:
    """Record why the incident happened (replacing an earlier note), by whom and when; it
    acknowledges the incident too. Allowed after it is resolved: a post-mortem may come
    later. RootCauseRequired (400) for a blank note; locks the incident."""
    permissions.require(actor, permissions.HANDLE_OVERSELLS)
    root_cause = root_cause.strip()
    if not root_cause:
        raise RootCauseRequired("Write down what caused the oversell.")
    incident = _lock_incident(incident_id)
    _note_root_cause(incident, root_cause, actor)
    if incident.acknowledged_at is None:
        _acknowledge(incident, actor)
    incident.save()
    return incident


@transaction.atomic
def resolve_oversell(*, incident_id: int, actor: Actor, root_cause: str = "") -> OversellIncident:
    """Close the incident: its root cause is noted (now, from ``root_cause``, or before),
    and it is acknowledged if it was not.

    Locks the incident; IncidentResolved (409) if it was resolved already, RootCauseRequired
    (400) if no root cause was ever noted.
    """
    permissions.require(actor, permissions.HANDLE_OVERSELLS)
    incident = _lock_incident(incident_id)
    if incident.resolved_at is not None:
        raise IncidentResolved(
            f"Oversell incident {incident_id} was resolved by {incident.resolved_by or 'someone'}."
        )
    if root_cause.strip():
        _note_root_cause(incident, root_cause.strip(), actor)
    if not incident.root_cause:
        raise RootCauseRequired("Note what caused the oversell before resolving it.")
    if incident.acknowledged_at is None:
        _acknowledge(incident, actor)
    incident.resolved_at = timezone.now()
    incident.resolved_by = actor.get_username()
    incident.save()
    return incident


def _acknowledge(incident: OversellIncident, actor: Actor) -> None:
    incident.acknowledged_at = timezone.now()
    incident.acknowledged_by = actor.get_username()


def _note_root_cause(incident: OversellIncident, root_cause: str, actor: Actor) -> None:
    incident.root_cause = root_cause
    incident.root_cause_noted_at = timezone.now()
    incident.root_cause_noted_by = actor.get_username()


# -----------------------------------------------------------------------------------------
# Unmapped lines and mapping gaps
# -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProposedListing:
    """The listing an unmapped line's identifiers describe, in the SKU map's fields.

    ``external_id`` is empty where the line does not carry the platform's stock-bearing id
    (a Shopify order line names the variant, not its inventory item): the operator gives it.
    """

    external_id: str
    external_sku: str
    extra_identifiers: Mapping[str, Any]


def proposed_listing(*, line: UnmappedLine) -> ProposedListing:
    """The listing fields the line's identifiers give, by the channel connector's names
    for them (``Connector.listing_field_of_identifier``). The line's ``channel`` is read."""
    connector = get_connector(line.channel)
    fields: dict[str, str] = {}
    extra: dict[str, Any] = {}
    for name, value in (line.identifiers or {}).items():
        if value in (None, ""):
            continue
        field = connector.listing_field_of_identifier.get(name, name)
        if field in ("external_id", "external_sku"):
            fields[field] = str(value)
        else:
            extra[field] = str(value)
    return ProposedListing(
        external_id=fields.get("external_id", ""),
        external_sku=fields.get("external_sku", ""),
        extra_identifiers=extra,
    )


@dataclasses.dataclass(frozen=True)
class Reapplied:
    """What mapping did: the listing, the waiting lines now applied, and those of the
    channel still waiting for a listing."""

    listing: Listing | None
    lines_applied: int
    lines_waiting: int


class LineNotWaiting(Conflict):
    code = "line_not_waiting"


class LineUnusable(Conflict):
    code = "line_unusable"


class ListingMappedElsewhere(Conflict):
    code = "listing_mapped_elsewhere"


@transaction.atomic
def map_unmapped_line(
    *, unmapped_line_id: int, sku_id: int, actor: Actor, external_id: str = ""
) -> Reapplied:
    """Map the line's item to ``sku_id`` on its channel, then apply every waiting line of the
    channel that maps now (this one included), once.

    The listing is the channel's listing the line's identifiers find (a gap with no SKU is
    given this one), else a new one built from the identifiers
    (``proposed_listing``), with ``external_id`` where the line carries none. Needs both
    the mapping and the unmapped-line permissions. LineNotWaiting (409) if the line is
    resolved; LineUnusable (409) if the platform sent something no listing can fix (its
    ``reason``); ListingMappedElsewhere (409) if the listing found has another SKU;
    ValidationError if the listing's fields are invalid.
    """
    permissions.require(actor, permissions.MAP_LISTINGS)
    permissions.require(actor, permissions.HANDLE_UNMAPPED_LINES)
    line = (
        UnmappedLine.objects.select_for_update().select_related("channel").get(pk=unmapped_line_id)
    )
    if line.resolved_at is not None:
        raise LineNotWaiting(f"Line {line.line_reference} was applied already.")
    if line.reason != NO_LISTING:
        raise LineUnusable(f"Line {line.line_reference} cannot be used: {line.reason}")
    connector = get_connector(line.channel)
    listing = ingest.listing_for_identifiers(
        channel=line.channel, connector=connector, identifiers=line.identifiers
    )
    if listing is None:
        proposed = proposed_listing(line=line)
        listing = services.create_listing(
            fields=services.ListingFields(
                channel_id=line.channel_id,
                external_id=external_id.strip() or proposed.external_id,
                sku_id=sku_id,
                external_sku=proposed.external_sku,
                extra_identifiers=proposed.extra_identifiers,
            )
        )
    elif listing.sku_id not in (None, sku_id):
        raise ListingMappedElsewhere(
            f"The line's item is listing {listing.external_id}, mapped to another SKU: "
            "change that listing in the SKU map instead."
        )
    elif listing.sku_id is None:
        listing = services.update_listing(
            listing_id=listing.pk,
            fields=dataclasses.replace(services.ListingFields.of(listing), sku_id=sku_id),
        )
    return _reapply_waiting_lines(channel_id=line.channel_id, actor=actor, listing=listing)


@transaction.atomic
def map_listing(*, listing_id: int, sku_id: int, actor: Actor) -> Reapplied:
    """Give a listing with no SKU (a mapping gap) this SKU, then apply every waiting line of
    its channel that maps now, once. The listing is owed a push. Needs both the mapping
    and the unmapped-line permissions."""
    permissions.require(actor, permissions.MAP_LISTINGS)
    permissions.require(actor, permissions.HANDLE_UNMAPPED_LINES)
    listing = Listing.objects.get(pk=listing_id)
    listing = services.update_listing(
        listing_id=listing.pk,
        fields=dataclasses.replace(services.ListingFields.of(listing), sku_id=sku_id),
    )
    return _reapply_waiting_lines(channel_id=listing.channel_id, actor=actor, listing=listing)


@transaction.atomic
def reapply_waiting_lines(*, channel_id: int, actor: Actor) -> Reapplied:
    """Apply every line of the channel that waited for a listing and maps now (a listing
    added by the admin or a CSV import since), once each."""
    permissions.require(actor, permissions.HANDLE_UNMAPPED_LINES)
    return _reapply_waiting_lines(channel_id=channel_id, actor=actor, listing=None)


def _reapply_waiting_lines(*, channel_id: int, actor: Actor, listing: Listing | None) -> Reapplied:
    """Apply again the receipts of the channel's waiting lines that map now, oldest receipt
    first (an order before its cancellation), and resolve those lines.

    ``ingest.reapply_receipt`` applies each line once under its order's lock; a line of the
    same order that still maps nowhere stays waiting.
    """
    waiting = list(
        UnmappedLine.objects.select_for_update()
        .filter(channel_id=channel_id, resolved_at__isnull=True, reason=NO_LISTING)
        .select_related("channel")
        .order_by("pk")
    )
    if not waiting:
        return Reapplied(listing=listing, lines_applied=0, lines_waiting=0)
    connector = get_connector(waiting[0].channel)
    mapped: dict[int, Listing] = {}
    for line in waiting:
        found = ingest.listing_for_identifiers(
            channel=line.channel, connector=connector, identifiers=line.identifiers
        )
        if found is not None and found.sku_id is not None:
            mapped[line.pk] = found
    receipt_ids = {line.receipt_id for line in waiting if line.pk in mapped}
    settled: set[int] = set()
    for receipt_id in _in_arrival_order(receipt_ids):
        if ingest.reapply_receipt(receipt_id=receipt_id) in _LINES_SETTLED:
            settled.add(receipt_id)
    applied = [line for line in waiting if line.pk in mapped and line.receipt_id in settled]
    now = timezone.now()
    for line in applied:
        line.resolved_at = now
        line.resolved_by = actor.get_username()
        line.listing = mapped[line.pk]
        line.save(update_fields=["resolved_at", "resolved_by", "listing"])
    return Reapplied(
        listing=listing, lines_applied=len(applied), lines_waiting=len(waiting) - len(applied)
    )


# A receipt applied again ends processed, or waiting for its order (a cancellation whose
# lines map now, of an order not committed yet): its lines are in the pipeline's hands.
_LINES_SETTLED = (WebhookReceipt.Status.PROCESSED, WebhookReceipt.Status.AWAITING_ORDER)


def _in_arrival_order(receipt_ids: Iterable[int]) -> list[int]:
    return list(
        WebhookReceipt.objects.filter(pk__in=list(receipt_ids))
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)
    )


# -----------------------------------------------------------------------------------------
# Webhook receipts
# -----------------------------------------------------------------------------------------

REPROCESSABLE = REPROCESSABLE_RECEIPT_STATUSES


class ReceiptNotReprocessable(Conflict):
    code = "receipt_not_reprocessable"


@transaction.atomic
def reprocess_receipts(*, receipt_ids: Iterable[int], actor: Actor) -> list[int]:
    """Send failed, quarantined and order-never-came receipts among these through ingest
    again, after a fix; the ids sent.

    Each is reset to received with fresh tries, recorded with who and when, and processed
    once this commits (a task each; the receipt sweep finds any whose task is lost). Locks
    the receipts in primary-key order and takes only those still in one of
    ``REPROCESSABLE`` then: one being applied right now is waited for, and one processed
    meanwhile, or processed ever, is left alone, so nothing is applied twice.
    """
    permissions.require(actor, permissions.REPROCESS_RECEIPTS)
    ids = list(
        WebhookReceipt.objects.select_for_update()
        .filter(pk__in=set(receipt_ids), status__in=REPROCESSABLE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not ids:
        return []
    WebhookReceipt.objects.filter(pk__in=ids).update(
        status=WebhookReceipt.Status.RECEIVED,
        attempts=0,
        processed_at=None,
        awaited_order="",
        awaited_until=None,
        reprocessed_at=timezone.now(),
        reprocessed_by=actor.get_username(),
    )

    def enqueue_each() -> None:
        for receipt_id in ids:
            enqueue.retry_webhook_processing(receipt_id)

    # Best effort, as every wake-up: the rows are the record, the sweep the safety net.
    transaction.on_commit(enqueue_each, robust=True)
    return ids


@transaction.atomic
def reprocess_receipt(*, receipt_id: int, actor: Actor) -> WebhookReceipt:
    """``reprocess_receipts`` for one: ReceiptNotReprocessable (409) if it is not failed,
    quarantined or waiting for an order that never came; DoesNotExist if there is none."""
    if not reprocess_receipts(receipt_ids=[receipt_id], actor=actor):
        status = WebhookReceipt.objects.values_list("status", flat=True).get(pk=receipt_id)
        raise ReceiptNotReprocessable(
            f"Receipt {receipt_id} is {status}: only failed, quarantined or order-never-came "
            "receipts are processed again.",
            extra={"status": status},
        )
    return WebhookReceipt.objects.defer("body").get(pk=receipt_id)
