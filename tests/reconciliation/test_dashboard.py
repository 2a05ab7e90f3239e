"""The sync-health console pages and their actions, through Django's test client."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from channels.models import (
    Channel,
    ChannelOperation,
    Listing,
    PendingPush,
    PushAttempt,
    WebhookReceipt,
)
from nventory import permissions
from reconciliation.models import ReconciliationRun
from tests import factories

pytestmark = pytest.mark.django_db


def _user(username: str, *granted: str) -> User:
    user = User.objects.create_user(username=username)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=permissions.READABLE_APPS, codename__startswith="view_"
        )
    )
    for name in granted:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)


@pytest.fixture
def manager(client) -> User:
    user = _user("manager", permissions.MANAGE_CHANNELS)
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client) -> User:
    user = _user("viewer")
    client.force_login(user)
    return user


@pytest.fixture
def channels(sku, location):
    made = []
    for number in range(5):
        channel = factories.make_channel(
            name=f"Store {number}", locations=[location], mode=Channel.Mode.ACTIVE
        )
        factories.make_listing(channel=channel, sku=sku)
        made.append(channel)
    return made


@pytest.mark.parametrize("page", ["scorecard", "channels", "charts"])
def test_pages_render_in_a_bounded_number_of_queries(
    client, manager, channels, page, django_assert_max_num_queries
) -> None:
    """Five channels or one: the same queries (no query per channel). Up to two of them
    roll the push attempts up before the rollup is read (``kpis.roll_up_pushes``)."""
    with django_assert_max_num_queries(17):
        response = client.get(reverse(f"dashboard:{page}"))
    assert response.status_code == 200
    for channel in channels:
        assert channel.name.encode() in response.content


def _a_busy_day(channels) -> None:
    """A push every minute of the last day on every channel (a failed one every hour),
    an order and a webhook receipt a minute: the history the pages summarise."""
    now = timezone.now()
    listings = {listing.channel_id: listing for listing in Listing.objects.all()}
    PushAttempt.objects.bulk_create(
        PushAttempt(
            channel=channel,
            listing=listings[channel.pk],
            target_quantity=1,
            outcome="failed" if minute % 60 == 0 else "applied",
            change_at=now - dt.timedelta(minutes=minute, seconds=2),
            sent_at=now - dt.timedelta(minutes=minute),
            acked_at=now - dt.timedelta(minutes=minute),
            latency_ms=None if minute % 60 == 0 else 2_000.0 + minute,
        )
        for channel in channels
        for minute in range(1440)
    )
    WebhookReceipt.objects.bulk_create(
        WebhookReceipt(
            channel=channels[minute % len(channels)],
            topic="orders/create",
            dedupe_key=f"busy-{minute}",
            body=b"{}",
            status="processed",
            received_at=now - dt.timedelta(minutes=minute),
        )
        for minute in range(1440)
    )


@pytest.mark.parametrize("page", ["scorecard", "channels", "charts"])
def test_a_day_of_history_costs_no_more_queries_than_none(client, manager, channels, page) -> None:
    """7,200 pushes and 1,440 receipts later, the page makes the very same queries: none
    is per push, per minute or per row."""
    with CaptureQueriesContext(connection) as quiet:
        assert client.get(reverse(f"dashboard:{page}")).status_code == 200
    _a_busy_day(channels)
    with CaptureQueriesContext(connection) as busy:
        response = client.get(reverse(f"dashboard:{page}"))
    assert response.status_code == 200
    assert len(busy) == len(quiet)


def test_htmx_refresh_returns_only_the_scorecard_body(client, manager, channels) -> None:
    response = client.get(reverse("dashboard:scorecard"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.content.lstrip().startswith(b'<div id="scorecard"')
    assert b"<html" not in response.content


def test_manager_switches_a_channel_to_shadow_and_it_is_recorded(
    client, manager, channels
) -> None:
    channel = channels[0]
    response = client.post(
        reverse("dashboard:channel-mode", args=[channel.pk]), {"mode": "shadow"}, follow=True
    )
    assert b"is now shadow" in response.content
    channel.refresh_from_db()
    assert channel.mode == Channel.Mode.SHADOW
    operation = ChannelOperation.objects.get(channel=channel)
    assert (operation.action, operation.actor, operation.detail) == (
        "switch_mode",
        "manager",
        "active → shadow",
    )


def test_viewer_sees_the_channels_page_but_cannot_switch_a_mode(client, viewer, channels) -> None:
    channel = channels[0]
    page = client.get(reverse("dashboard:channels"))
    assert page.status_code == 200
    assert b"You may look but not change" in page.content
    response = client.post(
        reverse("dashboard:channel-mode", args=[channel.pk]), {"mode": "paused"}, follow=True
    )
    assert b"You do not have the permission to do that." in response.content
    channel.refresh_from_db()
    assert channel.mode == Channel.Mode.ACTIVE
    assert not ChannelOperation.objects.exists()


def test_unknown_mode_is_refused(client, manager, channels) -> None:
    response = client.post(
        reverse("dashboard:channel-mode", args=[channels[0].pk]), {"mode": "turbo"}, follow=True
    )
    assert b"not a mode a channel can have" in response.content
    channels[0].refresh_from_db()
    assert channels[0].mode == Channel.Mode.ACTIVE


def test_manager_runs_a_full_sync_and_sees_its_progress(client, manager, channels) -> None:
    channel = channels[0]
    PendingPush.objects.filter(channel=channel).delete()
    response = client.post(reverse("dashboard:channel-full-sync", args=[channel.pk]), follow=True)
    assert b"A full sync of Store 0 was started (1 listings)." in response.content
    run = ReconciliationRun.objects.get(channel=channel, kind="full_sync")
    assert run.status == "running"
    assert PendingPush.objects.filter(channel=channel).count() == 1
    assert b"Full sync: 0 / 1" in response.content
    PendingPush.objects.filter(channel=channel).delete()  # the pusher sent it
    page = client.get(reverse("dashboard:channels"))
    assert b"Full sync: 1 / 1" in page.content
    operation = ChannelOperation.objects.get(channel=channel)
    assert (operation.action, operation.actor) == ("full_sync_now", "manager")


def test_viewer_cannot_run_a_full_sync(client, viewer, channels) -> None:
    response = client.post(
        reverse("dashboard:channel-full-sync", args=[channels[0].pk]), follow=True
    )
    assert b"You do not have the permission to do that." in response.content
    assert not ReconciliationRun.objects.exists()


def test_manager_starts_a_poll_recorded_and_queued(
    client, manager, channels, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("dashboard:channel-poll", args=[channels[0].pk]), follow=True
        )
    assert b"A poll of Store 0 was started." in response.content
    assert len(callbacks) == 1  # the task is sent once the request commits
    operation = ChannelOperation.objects.get(channel=channels[0])
    assert (operation.action, operation.actor) == ("poll_now", "manager")


def test_viewer_cannot_start_a_poll(client, viewer, channels) -> None:
    response = client.post(reverse("dashboard:channel-poll", args=[channels[0].pk]), follow=True)
    assert b"You do not have the permission to do that." in response.content
    assert not ChannelOperation.objects.exists()


def test_a_paused_channel_is_not_polled(client, manager, channels) -> None:
    Channel.objects.filter(pk=channels[0].pk).update(mode=Channel.Mode.PAUSED)
    response = client.post(reverse("dashboard:channel-poll", args=[channels[0].pk]), follow=True)
    assert b"A paused channel is not polled" in response.content
    assert not ChannelOperation.objects.exists()
