"""The daily report: figures checked against the data, the email, the page, the schedules."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from channels.models import OversellIncident, PushAttempt
from inventory import services as stock
from inventory.models import EventSource
from nventory import permissions
from reconciliation import reports
from reconciliation.models import DailyReport, Discrepancy, ReconciliationRun
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def day_of_data(db):
    """Two channels' polls, three corrections, pushes, three orders, one oversold."""
    location = factories.make_location()
    alpha = factories.make_channel(name="Alpha", locations=[location], mode="active")
    beta = factories.make_channel(name="Beta", locations=[location], mode="active")
    shoe = factories.make_sku(category="Shoes")
    hat = factories.make_sku(category="Hats")
    factories.stock(shoe, location, 10)
    shoe_on_alpha = factories.make_listing(channel=alpha, sku=shoe)
    hat_on_alpha = factories.make_listing(channel=alpha, sku=hat)
    hat_on_beta = factories.make_listing(channel=beta, sku=hat)
    now = timezone.now()
    run_alpha = ReconciliationRun.objects.create(
        channel=alpha,
        kind="poll",
        status="done",
        channel_mode="active",
        listings_total=100,
        listings_checked=100,
        found=2,
        corrected=2,
        finished_at=now,
    )
    run_beta = ReconciliationRun.objects.create(
        channel=beta,
        kind="poll",
        status="done",
        channel_mode="active",
        listings_total=50,
        listings_checked=50,
        found=1,
        corrected=1,
        finished_at=now,
    )
    for run, listing, sku, cause, streak in (
        (run_alpha, shoe_on_alpha, shoe, "manual_edit", 3),
        (run_alpha, hat_on_alpha, hat, "manual_edit", 1),
        (run_beta, hat_on_beta, hat, "not_applied", 1),
    ):
        Discrepancy.objects.create(
            run=run,
            channel=run.channel,
            listing=listing,
            sku=sku,
            category=sku.category,
            expected=10,
            actual=7,
            cause=cause,
            consecutive_runs=streak,
            repeated=streak >= 3,
            corrected=True,
        )
    Discrepancy.objects.create(  # outside the window
        run=run_beta,
        channel=beta,
        listing=hat_on_beta,
        sku=hat,
        category="Hats",
        expected=1,
        actual=2,
        cause="unknown",
        corrected=True,
        detected_at=now - dt.timedelta(hours=30),
    )
    for latency, outcome in (
        (100, "applied"),
        (200, "applied"),
        (300, "applied"),
        (400, "applied"),
        (500, "applied"),
        (None, "failed"),
        (None, "rejected"),
        (None, "throttled"),
        (None, "shadow"),
    ):
        PushAttempt.objects.create(
            channel=alpha,
            listing=shoe_on_alpha,
            target_quantity=1,
            outcome=outcome,
            change_at=now,
            sent_at=now,
            acked_at=now if latency else None,
            latency_ms=latency,
        )
    for reference, quantity in (("ORD-1", 1), ("ORD-2", 1), ("ORD-3", 9)):  # 1 short
        event = stock.commit_order(
            sku_id=shoe.pk,
            location_id=location.pk,
            quantity=quantity,
            context=factories.context(
                source=EventSource.CHANNEL, actor=alpha.slug, external_reference=reference
            ),
            allow_shortfall=True,
        )
        if event.shortfall:
            OversellIncident.objects.create(
                channel=alpha,
                sku=shoe,
                listing=shoe_on_alpha,
                order_reference=reference,
                shortfall=event.shortfall,
                event=event,
            )
    return {"now": now + dt.timedelta(minutes=1), "shoe": shoe}


def test_the_report_figures_match_the_data(day_of_data):
    figures = reports.report_figures(
        start=day_of_data["now"] - reports.WINDOW, end=day_of_data["now"]
    )

    assert figures["discrepancies"] == 3
    corrections = figures["corrections"]
    assert corrections["total"] == 3
    assert corrections["by_channel"] == [
        {"key": "Alpha", "count": 2},
        {"key": "Beta", "count": 1},
    ]
    assert corrections["by_category"] == [
        {"key": "Hats", "count": 2},
        {"key": "Shoes", "count": 1},
    ]
    hour = timezone.localtime(timezone.now()).hour
    assert sum(row["count"] for row in corrections["by_hour"]) == 3
    assert corrections["by_hour"][hour]["count"] == 3
    assert figures["by_cause"][0] == {"cause": "Manual edit on the channel", "count": 2}
    (offender,) = figures["repeated_offenders"]
    assert offender["sku"] == day_of_data["shoe"].code and offender["consecutive_runs"] == 3
    assert [row["order"] for row in figures["oversells"]] == ["ORD-3"]
    kpis = figures["kpis"]
    assert kpis["sync_latency_p50_ms"] == 300.0
    assert kpis["sync_latency_p99_ms"] == 496.0  # continuous percentile of 100..500
    assert kpis["inventory_accuracy"] == round(1 - 3 / 150, 5)
    assert (kpis["orders"], kpis["oversold_orders"]) == (3, 1)
    assert kpis["overselling_rate"] == round(1 / 3, 5)
    assert (kpis["push_attempts"], kpis["push_errors"]) == (7, 2)
    assert kpis["sync_error_rate"] == round(2 / 7, 5)


def test_the_report_is_stored_and_emailed_once_as_html_and_text(day_of_data, settings):
    settings.RECONCILIATION_OPERATOR_EMAILS = ["ops@example.com", "lead@example.com"]

    report = reports.generate_and_send_daily_report(now=day_of_data["now"])

    assert report is not None
    assert (
        report.emailed_at is not None
        and report.recipients == settings.RECONCILIATION_OPERATOR_EMAILS
    )
    (email,) = mail.outbox
    assert isinstance(email, EmailMultiAlternatives)
    assert email.to == ["ops@example.com", "lead@example.com"]
    content, mimetype = email.alternatives[0]
    html = str(content)
    assert mimetype == "text/html" and html == report.html
    for figure in ("300 ms", "496 ms", "98.00%", "33.33%", "28.57%", "ORD-3", "Alpha"):
        assert figure in html
        assert figure in email.body
    assert "Inventory accuracy: 98.00% (target above 99.5%)" in email.body
    assert day_of_data["shoe"].code in html  # the repeated offender

    again = reports.generate_and_send_daily_report(now=day_of_data["now"])
    assert again is not None and again.pk == report.pk and len(mail.outbox) == 1
    assert DailyReport.objects.count() == 1


def test_a_kpi_with_nothing_to_measure_is_not_applicable(db):
    figures = reports.report_figures(start=timezone.now() - reports.WINDOW, end=timezone.now())
    assert set(figures["kpis"].values()) <= {None, 0}
    context = reports.report_context(figures=figures, date=timezone.localdate())
    assert {value for _, value, _ in context["kpi_rows"]} == {"n/a"}


@pytest.mark.urls("tests.reconciliation.urls")
def test_the_report_page_is_for_staff_who_may_read_reports(day_of_data, client):
    report = reports.generate_daily_report(now=day_of_data["now"])
    url = f"/reconciliation/reports/{report.date.isoformat()}/"
    user = get_user_model().objects.create_user(username="clerk", password="pw")
    client.force_login(user)
    assert client.get(url).status_code == 302

    user.is_staff = True
    user.save()
    assert client.get(url).status_code == 403  # staff, but not allowed to read reports

    user.groups.add(Group.objects.get(name=permissions.VIEWER))
    user = get_user_model().objects.get(pk=user.pk)  # permissions are cached per object
    client.force_login(user)
    page = client.get(url)
    assert page.status_code == 200
    assert b"98.00%" in page.content and b"ORD-3" in page.content
    assert client.get("/reconciliation/reports/").status_code == 200
    assert client.get("/reconciliation/reports/1999-01-01/").status_code == 404


def test_the_command_builds_the_report(day_of_data, capsys):
    call_command("reconcile", "report", "--no-email")
    assert "Inventory accuracy" in capsys.readouterr().out
    assert DailyReport.objects.get().emailed_at is None


def test_the_schedules_are_in_the_beat_database(db):
    tasks = {
        task.name: task for task in PeriodicTask.objects.filter(task__startswith="reconciliation.")
    }
    assert tasks["Reconciliation poll"].interval.every == 3 * 3600
    assert tasks["Reconciliation full sync"].crontab.hour == "4"
    assert tasks["Daily reconciliation report"].crontab.hour == "6"
    assert tasks["Shadow-mode comparison"].task == "reconciliation.shadow_compare_task"


@pytest.mark.django_db(transaction=True)
def test_two_beat_ticks_together_send_one_email(settings):
    """Two runs of the scheduled job at the same moment, on two threads with their own
    connections: the day's lock lets one build and send; the other sends nothing."""
    import threading

    from django.db import connection

    settings.RECONCILIATION_OPERATOR_EMAILS = ["ops@example.com"]
    start = threading.Barrier(2)
    outcomes: list[DailyReport | None] = []
    failures: list[BaseException] = []

    def tick() -> None:
        try:
            start.wait()
            outcomes.append(reports.generate_and_send_daily_report())
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures
    assert len(mail.outbox) == 1
    assert DailyReport.objects.count() == 1
    sent = [report for report in outcomes if report is not None]
    assert sent and all(report.emailed_at is not None for report in sent)


def test_running_full_syncs_are_refreshed_on_a_schedule(db):
    task = PeriodicTask.objects.get(name="Full sync progress")
    assert task.task == "reconciliation.refresh_full_syncs_task"
    assert task.interval.every == 30 and task.enabled
