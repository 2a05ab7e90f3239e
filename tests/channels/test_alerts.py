"""Alerts open once when a condition starts and clear once when it ends, with one email
at each end."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from channels import alerts
from channels.models import (
    Alert,
    ChannelBreaker,
    DeadLetter,
    OversellIncident,
    PushAttempt,
    WebhookReceipt,
)
from inventory import services as inventory_services
from reconciliation.models import ReconciliationRun
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def operators_mailbox(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALERT_EMAILS = ["ops@example.com"]
    settings.ALERT_DEAD_LETTERS_THRESHOLD = 2
    settings.ALERT_LATENCY_P95_MS = 60_000


@pytest.fixture
def listing(sku, location):
    factories.stock(sku, location, 5)
    channel = factories.make_channel(locations=[location], name="Shop A")
    return factories.make_listing(channel=channel, sku=sku)


def test_an_open_breaker_alerts_once_and_clears_once(listing) -> None:
    breaker = ChannelBreaker.objects.create(
        channel=listing.channel,
        failures=3,
        open_until=timezone.now() + dt.timedelta(seconds=30),
        last_error="503 Service Unavailable",
    )
    first = alerts.evaluate_alerts()
    assert [alert.kind for alert in first.opened] == [Alert.Kind.BREAKER_OPEN]
    for _ in range(3):
        again = alerts.evaluate_alerts()
        assert (again.opened, again.cleared, again.emailed) == ([], [], 0)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.startswith("[nventory] Alert: Shop A: circuit breaker open")
    assert mail.outbox[0].to == ["ops@example.com"]

    breaker.open_until = None
    breaker.failures = 0
    breaker.save()
    cleared = alerts.evaluate_alerts()
    assert len(cleared.cleared) == 1
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject.startswith("[nventory] Cleared: Shop A")
    alerts.evaluate_alerts()
    assert len(mail.outbox) == 2
    alert = Alert.objects.get()
    assert alert.cleared_at is not None and alert.cleared_email_sent_at is not None
    # It opens again: a new alert, a new email.
    breaker.open_until = timezone.now() + dt.timedelta(seconds=30)
    breaker.save()
    alerts.evaluate_alerts()
    assert Alert.objects.count() == 2
    assert len(mail.outbox) == 3


def _dead_letter(listing) -> DeadLetter:
    return DeadLetter.objects.create(channel=listing.channel, listing=listing, target_quantity=1)


def test_dead_letters_alert_past_their_threshold(listing) -> None:
    letters = [_dead_letter(listing) for _ in range(2)]
    assert alerts.evaluate_alerts().opened == []
    letters.append(_dead_letter(listing))
    (opened,) = alerts.evaluate_alerts().opened
    assert opened.kind == Alert.Kind.DEAD_LETTERS
    assert opened.figures == {"open": 3, "threshold": 2}
    DeadLetter.objects.filter(pk=letters[0].pk).update(status=DeadLetter.Status.REPLAYED)
    assert len(alerts.evaluate_alerts().cleared) == 1


def test_every_oversell_is_an_alert_until_it_is_resolved(listing, sku, location) -> None:
    event = inventory_services.commit_order(
        sku_id=sku.pk,
        location_id=location.pk,
        quantity=7,
        context=factories.context(),
        allow_shortfall=True,
    )
    incident = OversellIncident.objects.create(
        channel=listing.channel,
        sku=sku,
        listing=listing,
        order_reference="#1001",
        shortfall=event.shortfall,
        event=event,
    )
    (opened,) = alerts.evaluate_alerts().opened
    assert opened.key == f"oversell:{incident.pk}"
    assert "order #1001 oversold 2" in opened.message
    OversellIncident.objects.filter(pk=incident.pk).update(resolved_at=timezone.now())
    assert len(alerts.evaluate_alerts().cleared) == 1
    assert [message.subject.split(":")[0] for message in mail.outbox] == [
        "[nventory] Alert",
        "[nventory] Cleared",
    ]


def test_latency_alerts_over_the_scorecard_line(listing) -> None:
    now = timezone.now()
    PushAttempt.objects.bulk_create(
        PushAttempt(
            channel=listing.channel,
            listing=listing,
            target_quantity=1,
            outcome=PushAttempt.Outcome.APPLIED,
            change_at=now,
            sent_at=now,
            acked_at=now,
            latency_ms=latency,
        )
        for latency in [1_000.0] * 90 + [90_000.0] * 10
    )
    (opened,) = alerts.evaluate_alerts().opened
    assert opened.kind == Alert.Kind.LATENCY
    assert opened.figures["p95_ms"] == pytest.approx(90_000.0)


def test_a_failed_email_is_sent_by_the_next_evaluation(listing, monkeypatch) -> None:
    ChannelBreaker.objects.create(
        channel=listing.channel, failures=3, open_until=timezone.now() + dt.timedelta(minutes=1)
    )

    def refuse(**kwargs):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr(alerts, "send_mail", refuse)
    assert alerts.evaluate_alerts().emailed == 0
    assert Alert.objects.get().opened_email_sent_at is None
    monkeypatch.undo()
    assert alerts.evaluate_alerts().emailed == 1
    assert len(mail.outbox) == 1


def test_the_banner_reads_the_open_alerts(listing) -> None:
    ChannelBreaker.objects.create(
        channel=listing.channel, failures=3, open_until=timezone.now() + dt.timedelta(minutes=1)
    )
    for _ in range(3):
        _dead_letter(listing)
    alerts.evaluate_alerts()
    assert alerts.open_alert_count() == 2
    assert {alert.kind for alert in alerts.open_alerts()} == {"breaker_open", "dead_letters"}
    assert alerts.alert_history(kind="dead_letters").count() == 1


# ---------------------------------------------------------------------------------------
# The scorecard's other KPIs, each per channel, at the scorecard's target
# ---------------------------------------------------------------------------------------
NOW = timezone.now().replace(microsecond=0)


def _pushes(listing, outcome, count, *, at):
    PushAttempt.objects.bulk_create(
        PushAttempt(
            channel=listing.channel,
            listing=listing,
            target_quantity=1,
            outcome=outcome,
            change_at=at,
            sent_at=at,
            acked_at=at,
            latency_ms=1_000.0 if outcome == PushAttempt.Outcome.APPLIED else None,
        )
        for _ in range(count)
    )


def _kinds_opened_and_cleared(evaluation) -> tuple[list[str], list[str]]:
    return (
        [alert.kind for alert in evaluation.opened],
        [alert.kind for alert in evaluation.cleared],
    )


def test_error_rate_alerts_once_while_over_its_target_and_clears_once(listing) -> None:
    """2 failed of 1000 sends is 0.2 %, over the 0.1 % target: one alert, kept while the
    rate stays over; 2000 more applied sends bring it to 0.067 %: cleared once."""
    other = factories.make_listing(channel=factories.make_channel(name="Shop B"), sku=listing.sku)
    hour_ago = NOW - dt.timedelta(hours=1)
    _pushes(listing, PushAttempt.Outcome.APPLIED, 998, at=hour_ago)
    _pushes(listing, PushAttempt.Outcome.FAILED, 2, at=hour_ago)
    _pushes(other, PushAttempt.Outcome.APPLIED, 10, at=hour_ago)

    first = alerts.evaluate_alerts(now=NOW)
    assert _kinds_opened_and_cleared(first) == ([Alert.Kind.ERROR_RATE], [])
    (opened,) = first.opened
    assert (opened.channel_id, opened.key) == (
        listing.channel_id,
        f"error_rate:{listing.channel_id}",
    )
    assert opened.figures == {"rate": 0.002, "errors": 2, "sent": 1000}
    assert opened.message == (
        "Shop A: push error rate 0.20% over 24 h (2 of 1000 sends), target under 0.1%."
    )
    _pushes(listing, PushAttempt.Outcome.FAILED, 1, at=hour_ago)
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == ([], [])

    _pushes(listing, PushAttempt.Outcome.APPLIED, 5000, at=hour_ago)
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == (
        [],
        [Alert.Kind.ERROR_RATE],
    )
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == ([], [])
    assert [message.subject.split(":")[0] for message in mail.outbox] == [
        "[nventory] Alert",
        "[nventory] Cleared",
    ]


def test_uptime_alerts_when_down_minutes_take_it_under_its_target(listing) -> None:
    """Two minutes whose every send failed: 1438 of 1440 minutes up is 99.86 %, under the
    99.9 % target; an applied send in each of those minutes makes them up again."""
    minutes = [NOW - dt.timedelta(minutes=offset) for offset in (30, 90)]
    # Enough sends elsewhere that the failures keep the error rate within its target.
    _pushes(listing, PushAttempt.Outcome.APPLIED, 3000, at=NOW - dt.timedelta(hours=5))
    for moment in minutes:
        _pushes(listing, PushAttempt.Outcome.FAILED, 1, at=moment)
    # One down minute alone is 99.93 %: within the target.
    _pushes(listing, PushAttempt.Outcome.FAILED, 1, at=NOW - dt.timedelta(hours=30))

    first = alerts.evaluate_alerts(now=NOW)
    assert _kinds_opened_and_cleared(first) == ([Alert.Kind.UPTIME], [])
    assert first.opened[0].figures == {"share": round(1438 / 1440, 6), "down_minutes": 2}
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == ([], [])

    _pushes(listing, PushAttempt.Outcome.APPLIED, 1, at=minutes[0])
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == (
        [],
        [Alert.Kind.UPTIME],
    )


def _receipts(channel, status, count, *, ago, prefix):
    for number in range(count):
        receipt = WebhookReceipt.objects.create(
            channel=channel,
            topic="orders/create",
            dedupe_key=f"{prefix}-{number}",
            body=b"{}",
            status=status,
        )
        WebhookReceipt.objects.filter(pk=receipt.pk).update(received_at=NOW - ago)


def test_webhook_health_alerts_while_deliveries_fail_and_clears_when_handled(listing) -> None:
    """1 failed of 500 receipts is 99.8 % handled, under the 99.9 % target; once the
    failed one is processed again, all are handled: cleared."""
    channel = listing.channel
    _receipts(channel, "processed", 499, ago=dt.timedelta(hours=2), prefix="ok")
    _receipts(channel, "failed", 1, ago=dt.timedelta(hours=2), prefix="bad")

    first = alerts.evaluate_alerts(now=NOW)
    assert _kinds_opened_and_cleared(first) == ([Alert.Kind.WEBHOOK_HEALTH], [])
    assert first.opened[0].figures["failed"] == 1
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == ([], [])

    WebhookReceipt.objects.filter(status="failed").update(status="processed")
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == (
        [],
        [Alert.Kind.WEBHOOK_HEALTH],
    )


def test_sync_accuracy_alerts_from_the_last_poll_and_clears_with_a_better_one(listing) -> None:
    """A poll finding 6 of 1000 listings off is 99.4 %, under the 99.5 % target; a newer
    poll finding 5 off (99.5 %) meets it: the alert clears."""

    def poll(found: int, hours_ago: int) -> None:
        ReconciliationRun.objects.create(
            channel=listing.channel,
            kind=ReconciliationRun.Kind.POLL,
            status=ReconciliationRun.Status.DONE,
            channel_mode="active",
            listings_total=1000,
            listings_checked=1000,
            found=found,
            started_at=NOW - dt.timedelta(hours=hours_ago),
            finished_at=NOW - dt.timedelta(hours=hours_ago),
        )

    poll(found=6, hours_ago=2)
    first = alerts.evaluate_alerts(now=NOW)
    assert _kinds_opened_and_cleared(first) == ([Alert.Kind.SYNC_ACCURACY], [])
    assert first.opened[0].figures == {
        "share": 0.994,
        "discrepancies": 6,
        "listings_judged": 1000,
    }
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == ([], [])

    poll(found=5, hours_ago=1)
    assert _kinds_opened_and_cleared(alerts.evaluate_alerts(now=NOW)) == (
        [],
        [Alert.Kind.SYNC_ACCURACY],
    )
