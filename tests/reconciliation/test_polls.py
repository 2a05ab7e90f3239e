"""Reconciliation polls against the Shopify simulator: detect, explain, correct, alert, lock."""

from __future__ import annotations

import psycopg
import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import connection

from channels.models import Channel, DeadLetter, PendingPush
from reconciliation import selectors, services
from reconciliation.models import Discrepancy, ReconciliationRun
from tests import factories
from tests.reconciliation.conftest import drain

pytestmark = pytest.mark.django_db


def test_dropped_update_and_manual_edit_are_detected_explained_and_corrected(make_sim_channel):
    """Both kinds of drift are found with their context and the channel converges."""
    sim = make_sim_channel(items=4, stock=10)
    dropped, edited = sim.listings[0], sim.listings[1]
    sim.simulator.faults(sim.shop, drop_next=1)
    factories.stock(dropped.sku, sim.location, 5)
    drain(sim.channel)
    sim.set_on_channel(edited, 99)
    assert sim.shown()[dropped.pk] == 10  # the channel said yes and kept 10

    run = services.reconcile_channel(channel_id=sim.channel.pk)

    assert run is not None and run.status == ReconciliationRun.Status.DONE
    assert (run.listings_total, run.listings_checked, run.found, run.corrected) == (4, 4, 2, 2)
    by_listing = {d.listing_id: d for d in run.discrepancies.all()}
    not_applied = by_listing[dropped.pk]
    assert (not_applied.expected, not_applied.actual) == (15, 10)
    assert not_applied.cause == Discrepancy.Cause.NOT_APPLIED
    assert not_applied.sku_id == dropped.sku_id and not_applied.category == "Shoes"
    assert not_applied.last_pushed_quantity == 15 and not_applied.last_pushed_at is not None
    assert "acknowledged 15" in not_applied.evidence
    manual = by_listing[edited.pk]
    assert (manual.expected, manual.actual, manual.cause) == (10, 99, "manual_edit")
    assert manual.corrected and not manual.repeated

    drain(sim.channel)
    assert sim.shown() == {
        listing.pk: 15 if listing == dropped else 10 for listing in sim.listings
    }
    again = services.reconcile_channel(channel_id=sim.channel.pk)
    assert again is not None and again.found == 0


def test_a_push_in_flight_is_not_drift(make_sim_channel):
    """A listing that owes a push is skipped: the channel has not been told yet."""
    sim = make_sim_channel(items=2)
    factories.stock(sim.listings[0].sku, sim.location, 3)  # owed, not pushed

    run = services.reconcile_channel(channel_id=sim.channel.pk)

    assert run is not None
    assert (run.found, run.skipped_in_flight, run.drift_percent) == (0, 1, 0.0)


def test_a_dead_lettered_push_is_named_as_the_cause(make_sim_channel):
    sim = make_sim_channel(items=2)
    # The circuit breaker out of the way: with it, a channel down for good keeps its pushes
    # owed rather than dead-lettering them.
    sim.channel.platform_settings |= {"breaker_failures": 100}
    sim.channel.save()
    sim.simulator.faults(sim.shop, fail_next=100, fail_status=500)
    factories.stock(sim.listings[0].sku, sim.location, 4)
    drain(sim.channel)
    assert DeadLetter.objects.filter(listing=sim.listings[0]).exists()
    sim.simulator.faults(sim.shop, reset=True)

    run = services.reconcile_channel(channel_id=sim.channel.pk)

    assert run is not None
    discrepancy = run.discrepancies.get()
    assert (discrepancy.cause, discrepancy.expected, discrepancy.actual) == ("failed_push", 14, 10)
    drain(sim.channel)
    assert sim.shown()[sim.listings[0].pk] == 14


def test_drift_in_three_consecutive_runs_is_flagged_repeated_with_its_history(make_sim_channel):
    sim = make_sim_channel(items=3)
    listing = sim.listings[2]
    flags = []
    for _ in range(3):
        sim.set_on_channel(listing, 0)
        run = services.reconcile_channel(channel_id=sim.channel.pk)
        assert run is not None
        discrepancy = run.discrepancies.get()
        flags.append((discrepancy.consecutive_runs, discrepancy.repeated))
        drain(sim.channel)

    assert flags == [(1, False), (2, False), (3, True)]
    history = list(selectors.discrepancy_history(listing_id=listing.pk))
    assert [d.consecutive_runs for d in history] == [3, 2, 1]
    assert all(d.actual == 0 and d.expected == 10 for d in history)


def test_a_clean_run_breaks_the_streak(make_sim_channel):
    sim = make_sim_channel(items=2)
    listing = sim.listings[0]
    for edit in (True, True, False, True):
        if edit:
            sim.set_on_channel(listing, 1)
        run = services.reconcile_channel(channel_id=sim.channel.pk)
        drain(sim.channel)
    assert run is not None
    assert run.discrepancies.get().consecutive_runs == 1


def test_drift_over_two_percent_emails_the_operators_and_shows_on_the_dashboard(
    make_sim_channel, settings
):
    settings.RECONCILIATION_OPERATOR_EMAILS = ["ops@example.com"]
    sim = make_sim_channel(items=20)
    sim.set_on_channel(sim.listings[3], 2)  # 1 in 20: 5%

    run = services.reconcile_channel(channel_id=sim.channel.pk)

    assert run is not None and run.drift_percent == 5.0 and run.alerted_at is not None
    assert len(mail.outbox) == 1
    alert = mail.outbox[0]
    assert isinstance(alert, EmailMultiAlternatives)
    assert alert.to == ["ops@example.com"]
    assert sim.channel.name in alert.subject and "5.00%" in alert.subject
    assert "Manual edit on the channel: 1" in alert.body
    html = str(alert.alternatives[0][0])
    assert "<table" in html and sim.listings[3].sku.code in html
    assert [r.channel_id for r in selectors.channels_in_drift_alert()] == [sim.channel.pk]


def test_drift_at_two_percent_does_not_alert(make_sim_channel, settings):
    settings.RECONCILIATION_OPERATOR_EMAILS = ["ops@example.com"]
    sim = make_sim_channel(items=50)
    sim.set_on_channel(sim.listings[0], 3)  # 1 in 50: exactly 2%

    run = services.reconcile_channel(channel_id=sim.channel.pk)

    assert run is not None and run.drift_percent == 2.0 and run.alerted_at is None
    assert mail.outbox == []
    assert selectors.channels_in_drift_alert() == []


def test_a_shadow_channel_is_compared_and_never_written(make_sim_channel, settings):
    settings.RECONCILIATION_OPERATOR_EMAILS = ["ops@example.com"]
    sim = make_sim_channel(items=3, mode=Channel.Mode.SHADOW)
    # The channel is kept by hand: two figures agree with the master, one does not.
    sim.set_on_channel(sim.listings[0], 10)
    sim.set_on_channel(sim.listings[1], 10)
    sim.set_on_channel(sim.listings[2], 7)

    run = services.reconcile_channel(channel_id=sim.channel.pk)

    assert run is not None and run.channel_mode == "shadow"
    assert (run.found, run.corrected) == (1, 0)
    assert not run.discrepancies.get().corrected
    assert not PendingPush.objects.filter(channel=sim.channel).exists()
    assert sim.writes() == []
    assert run.alerted_at is not None  # 1 in 3 is over the threshold: shown, not pushed
    assert "nothing was pushed" in mail.outbox[0].body


def test_a_second_run_while_one_holds_the_lock_does_nothing(make_sim_channel):
    sim = make_sim_channel(items=2)
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=True,
    ) as other_session:
        other_session.execute("SELECT pg_advisory_lock(%s)", [services.lock_key(sim.channel.pk)])
        assert services.reconcile_channel(channel_id=sim.channel.pk) is None
        assert services.start_full_sync(channel_ids=[sim.channel.pk]) == []
        assert not ReconciliationRun.objects.filter(channel=sim.channel).exists()
    # The other session has ended, and its lock with it.
    assert services.reconcile_channel(channel_id=sim.channel.pk) is not None


def test_a_crashed_run_is_superseded_by_the_next(make_sim_channel):
    sim = make_sim_channel(items=2)
    crashed = ReconciliationRun.objects.create(
        channel=sim.channel, kind="poll", channel_mode="active", listings_total=2
    )

    run = services.reconcile_channel(channel_id=sim.channel.pk)

    crashed.refresh_from_db()
    assert crashed.status == "failed" and "Superseded" in crashed.error
    assert run is not None and run.status == "done" and run.listings_checked == 2


def test_a_channel_that_cannot_be_read_fails_its_run_without_raising(make_sim_channel):
    sim = make_sim_channel(items=2)
    sim.simulator.faults(sim.shop, fail_next=1, fail_status=503)

    run = services.reconcile_channel(channel_id=sim.channel.pk)

    assert run is not None and run.status == "failed" and "503" in run.error


def test_polls_cover_active_and_shadow_channels_but_not_paused_ones(make_sim_channel):
    active = make_sim_channel(items=1)
    shadow = make_sim_channel(items=1, mode=Channel.Mode.SHADOW)
    paused = make_sim_channel(items=1, synced=False, mode=Channel.Mode.PAUSED)

    runs = services.reconcile_channels(
        channel_ids=[active.channel.pk, shadow.channel.pk, paused.channel.pk], max_workers=1
    )

    assert {run.channel_id for run in runs} == {active.channel.pk, shadow.channel.pk}


def test_full_sync_owes_every_listing_a_push_and_tracks_progress(make_sim_channel):
    sim = make_sim_channel(items=3)
    sim.set_on_channel(sim.listings[1], 42)

    (run,) = services.start_full_sync(channel_ids=[sim.channel.pk])

    assert (run.kind, run.listings_total) == ("full_sync", 3)
    assert PendingPush.objects.filter(channel=sim.channel).count() == 3
    (progress,) = services.refresh_full_syncs()
    assert progress.figures["remaining"] == 3 and progress.status == "running"
    drain(sim.channel)
    assert services.refresh_full_syncs()[0].status == "done"
    run.refresh_from_db()
    assert run.listings_checked == 3 and run.finished_at is not None
    assert sim.shown()[sim.listings[1].pk] == 10


def test_a_full_sync_started_by_beat_finishes_by_itself(make_sim_channel):
    """The scheduled tasks alone, no command: started, drained, marked done."""
    from reconciliation import tasks

    sim = make_sim_channel(items=2)
    tasks.full_sync_task()
    (run,) = ReconciliationRun.objects.filter(channel=sim.channel, kind="full_sync")
    assert tasks.refresh_full_syncs_task() == 1
    run.refresh_from_db()
    assert run.status == "running"
    drain(sim.channel)
    tasks.refresh_full_syncs_task()
    run.refresh_from_db()
    assert run.status == "done" and run.finished_at is not None
    assert tasks.refresh_full_syncs_task() == 0


def test_the_command_polls_with_a_progress_line(make_sim_channel, capsys):
    from django.core.management import call_command

    sim = make_sim_channel(items=2)
    sim.set_on_channel(sim.listings[0], 5)
    call_command("reconcile", "poll", "--channel", sim.channel.slug)
    out = capsys.readouterr().out
    assert f"[{'#' * 30}] 2/2 done" in out
    assert "1 drifted (50.00%), 1 corrected" in out


def test_the_command_starts_a_full_sync(make_sim_channel, capsys):
    from django.core.management import call_command

    sim = make_sim_channel(items=2)
    call_command("reconcile", "full-sync", "--channel", sim.channel.slug)
    assert f"{sim.channel.slug}: 2 listings owed a push" in capsys.readouterr().out
    assert PendingPush.objects.filter(channel=sim.channel).count() == 2
