"""The alert condition of the KPI reconciliation owns: sync accuracy at a channel's last
poll (``scorecard.Accuracy``), watched with the others by ``channels.alerts``."""

from __future__ import annotations

import datetime as dt

from channels import alerts, kpis
from channels.models import Alert
from reconciliation import scorecard


def accuracy_under_target(now: dt.datetime) -> list[alerts.Condition]:
    """A channel whose last finished poll found fewer listings matching than the
    accuracy target (amber or red on the scorecard)."""
    channels = list(kpis.channels_in_console_order())
    accuracy = scorecard.accuracy_at_last_poll(channel_ids=[c.pk for c in channels])
    return [
        alerts.Condition(
            kind=Alert.Kind.SYNC_ACCURACY,
            key=f"sync_accuracy:{channel.pk}",
            channel_id=channel.pk,
            message=f"{channel.name}: sync accuracy {figures.share:.2%} at the last poll "
            f"({figures.discrepancies} of {figures.listings_judged} listings differ), "
            f"target {scorecard.ACCURACY_TARGET:.1%}.",
            figures={
                "share": figures.share,
                "discrepancies": figures.discrepancies,
                "listings_judged": figures.listings_judged,
            },
        )
        for channel in channels
        if (figures := accuracy.get(channel.pk, scorecard.NO_POLL)).share is not None
        and alerts.misses_target(figures.status)
    ]
