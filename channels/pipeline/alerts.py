"""Alerts an operator must see: a ``ChannelAlert`` row (the admin lists the open ones) and
an ERROR in the log when one is raised; later occurrences only count on the open row.

The first cause: a channel's quarantined webhook receipts at ``WEBHOOK_QUARANTINE_CAP``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.utils import timezone

from channels.models import ChannelAlert, WebhookReceipt

logger = logging.getLogger(__name__)

# One statement against the partial unique index (one open alert per channel and kind), so
# that two processes raising the same alert at once make one row. Raw SQL: the ORM has no
# upsert with a conflict target that has a condition.
_RAISE_ALERT_SQL = """
INSERT INTO channels_channelalert
    (channel_id, kind, message, occurrences, raised_at, last_seen_at)
VALUES (%(channel_id)s, %(kind)s, %(message)s, 1, now(), now())
ON CONFLICT (channel_id, kind) WHERE resolved_at IS NULL
DO UPDATE SET occurrences = channels_channelalert.occurrences + 1, last_seen_at = now(),
              message = EXCLUDED.message
RETURNING (xmax = 0) AS raised
"""


def raise_alert(*, channel_id: int, kind: ChannelAlert.Kind, message: str) -> bool:
    """Open the channel's alert of this kind, or count one more occurrence on the open one;
    whether it was opened now (then also logged at ERROR, once per alert)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _RAISE_ALERT_SQL, {"channel_id": channel_id, "kind": str(kind), "message": message}
        )
        row = cursor.fetchone()
    raised = bool(row and row[0])
    if raised:
        logger.error("channel %s: %s", channel_id, message)
    return raised


def quarantine_is_full(*, channel_id: int) -> bool:
    """Whether the channel holds ``WEBHOOK_QUARANTINE_CAP`` quarantined receipts or more
    (an operator deletes them once looked at, which makes room)."""
    cap: int = settings.WEBHOOK_QUARANTINE_CAP
    held = WebhookReceipt.objects.filter(
        channel_id=channel_id, status=WebhookReceipt.Status.QUARANTINED
    )[:cap].count()
    return held >= cap


def alert_quarantine_full(*, channel_id: int) -> bool:
    """Raise the channel's QUARANTINE_FULL alert if its quarantine is full; whether full."""
    if not quarantine_is_full(channel_id=channel_id):
        return False
    raise_alert(
        channel_id=channel_id,
        kind=ChannelAlert.Kind.QUARANTINE_FULL,
        message=(
            f"{settings.WEBHOOK_QUARANTINE_CAP} quarantined webhooks are held: signed "
            "deliveries that cannot be used are no longer stored. Look at them (captured "
            "deliveries replayed? a new format from the platform?) and delete those seen."
        ),
    )
    return True


def resolve_alerts(*, alert_ids: list[int]) -> int:
    """Mark these open alerts resolved (the cause was looked at); how many were open. The
    next occurrence of a cause opens a new alert."""
    return ChannelAlert.objects.filter(pk__in=alert_ids, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
