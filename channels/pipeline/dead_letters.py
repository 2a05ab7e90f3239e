"""Dead letters: pushes a channel refused for good or that ran out of tries, replayed by
an operator or by the circuit breaker when the channel answers again.

A replay owes the listing a fresh push with fresh tries; the quantity sent is the master's
of that moment, not the one that failed.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from channels.models import DeadLetter
from channels.pipeline import outbox
from nventory.errors import Conflict


class DeadLetterNotOpen(Conflict):
    code = "dead_letter_not_open"


@transaction.atomic
def replay_dead_letter(*, dead_letter_id: int, actor: str) -> DeadLetter:
    """Owe the listing a fresh push, with fresh tries; the quantity is the master's now."""
    dead_letter = DeadLetter.objects.select_for_update().get(pk=dead_letter_id)
    if dead_letter.status != DeadLetter.Status.OPEN:
        raise DeadLetterNotOpen(f"Dead letter {dead_letter_id} is {dead_letter.status}.")
    outbox.mark_listings_owed(listing_ids=[dead_letter.listing_id])
    dead_letter.status = DeadLetter.Status.REPLAYED
    dead_letter.replayed_at = timezone.now()
    dead_letter.replayed_by = actor
    dead_letter.save(update_fields=["status", "replayed_at", "replayed_by"])
    return dead_letter


@transaction.atomic
def replay_dead_letters(*, channel_id: int, made_since: dt.datetime, actor: str) -> int:
    """Replay, in one go, every open dead letter of the channel made since then; how many."""
    dead_letters = DeadLetter.objects.select_for_update().filter(
        channel_id=channel_id, status=DeadLetter.Status.OPEN, created_at__gte=made_since
    )
    listing_ids = set(dead_letters.values_list("listing_id", flat=True))
    if not listing_ids:
        return 0
    outbox.mark_listings_owed(listing_ids=listing_ids)
    return dead_letters.update(
        status=DeadLetter.Status.REPLAYED, replayed_at=timezone.now(), replayed_by=actor
    )
