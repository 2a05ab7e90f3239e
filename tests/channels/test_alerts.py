"""Alerts open once when a condition starts and clear once when it ends, with one email
at each end."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from channels import alerts
from channels.models import Alert, ChannelBreaker, DeadLetter, OversellIncident, PushAttempt
from inventory import services as inventory_services
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
