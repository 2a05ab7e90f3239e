"""Buffer-rule precedence, ATS over a channel's locations, constraints and the admin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from channels import selectors
from channels.models import BufferRule, Channel, Listing, PushRollupBacklog
from inventory import services
from tests import factories

SECRET = "whsec-do-not-show-1234567890"


@pytest.fixture
def channel(db):
    return Channel.objects.create(
        platform=Channel.Platform.SHOPIFY,
        name="Test Shopify",
        slug="test-shopify",
        api_base_url="http://127.0.0.1:9000",
        credentials={"access_token": "shpat-secret"},
        webhook_secret=SECRET,
    )


@pytest.fixture
def listing(channel, sku):
    return Listing.objects.create(channel=channel, sku=sku, external_id="gid-1", external_sku="M1")


def test_no_rule_gives_none(listing):
    assert selectors.effective_buffer_rule(listing=listing) is None


def test_channel_rule_applies_without_overrides(channel, listing):
    rule = BufferRule.objects.create(channel=channel, percent=Decimal(10))
    assert selectors.effective_buffer_rule(listing=listing) == rule


def test_sku_override_beats_channel_rule(channel, listing, sku):
    BufferRule.objects.create(channel=channel, percent=Decimal(10))
    sku_rule = BufferRule.objects.create(channel=channel, sku=sku, fixed_units=3)
    assert selectors.effective_buffer_rule(listing=listing) == sku_rule


def test_listing_override_beats_sku_and_channel_rules(channel, listing, sku):
    BufferRule.objects.create(channel=channel, percent=Decimal(10))
    BufferRule.objects.create(channel=channel, sku=sku, fixed_units=3)
    listing_rule = BufferRule.objects.create(channel=channel, listing=listing, max_cap=5)
    assert selectors.effective_buffer_rule(listing=listing) == listing_rule


def test_other_channels_and_skus_rules_are_ignored(channel, listing):
    other = Channel.objects.create(
        platform=Channel.Platform.SHOPIFY, name="Other", slug="other", api_base_url="http://x.test"
    )
    BufferRule.objects.create(channel=other, percent=Decimal(50))
    BufferRule.objects.create(channel=channel, sku=factories.make_sku(), percent=Decimal(50))
    assert selectors.effective_buffer_rule(listing=listing) is None


def test_ats_sums_only_the_channels_locations(channel, listing, sku):
    """Sold from A (10 on hand, 3 committed) and B (5): 12; C's 100 units do not count."""
    a, b, c = (factories.make_location() for _ in range(3))
    factories.stock(sku, a, 10)
    factories.stock(sku, b, 5)
    factories.stock(sku, c, 100)
    services.commit_order(sku_id=sku.pk, location_id=a.pk, quantity=3, context=factories.context())
    channel.locations.set([a, b])

    assert selectors.available_to_sell(sku_id=sku.pk, location_ids=[a.pk, b.pk]) == 12
    assert selectors.available_to_sell(sku_id=sku.pk, location_ids=[]) == 0

    BufferRule.objects.create(channel=channel, fixed_units=2)
    explanation = selectors.explain_listing(listing=listing)
    assert explanation.steps[0].quantity == 12
    assert explanation.listed == 10


def test_rule_with_both_sku_and_listing_is_rejected(channel, listing, sku):
    with pytest.raises(IntegrityError), transaction.atomic():
        BufferRule.objects.create(channel=channel, sku=sku, listing=listing)


@pytest.mark.parametrize("scope", ["channel", "sku", "listing"])
def test_at_most_one_rule_per_scope(channel, listing, sku, scope):
    fields = {"channel": {}, "sku": {"sku": sku}, "listing": {"listing": listing}}[scope]
    BufferRule.objects.create(channel=channel, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        BufferRule.objects.create(channel=channel, **fields)


def test_percent_above_100_is_rejected(channel):
    with pytest.raises(IntegrityError), transaction.atomic():
        BufferRule.objects.create(channel=channel, percent=Decimal(101))


def test_external_id_unique_per_channel(channel, listing, sku):
    with pytest.raises(IntegrityError), transaction.atomic():
        Listing.objects.create(channel=channel, sku=sku, external_id=listing.external_id)


@pytest.mark.parametrize("model", ["channel", "listing", "bufferrule"])
def test_changelists_render(admin_client, channel, listing, model):
    BufferRule.objects.create(channel=channel, listing=listing, max_cap=5)
    response = admin_client.get(reverse(f"admin:channels_{model}_changelist"), {"q": "test"})
    assert response.status_code == 200


def test_channel_changelist_hides_secrets(admin_client, channel):
    response = admin_client.get(reverse("admin:channels_channel_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert channel.name in body
    assert SECRET not in body
    assert "shpat-secret" not in body


def test_listing_override_must_be_on_the_listings_channel(listing):
    other = Channel.objects.create(
        platform=Channel.Platform.SHOPIFY,
        name="Other store",
        slug="other-store",
        api_base_url="http://w.test",
    )
    with pytest.raises(ValidationError):
        BufferRule(channel=other, listing=listing).full_clean()


def test_the_sync_state_admin_lists_what_each_channel_was_told_and_is_expected_to_show(
    admin_client, listing
):
    from channels.models import ListingSyncState

    state = ListingSyncState.objects.create(
        listing=listing,
        last_pushed_quantity=7,
        expected_channel_quantity=6,
        unexplained_channel_moves=-1,
    )
    url = reverse("admin:channels_listingsyncstate_changelist")
    found = admin_client.get(url, {"q": "M1"})
    assert list(found.context["cl"].result_list) == [state]
    row = found.content.decode().split('id="result_list"')[1]
    assert "Test Shopify" in row and ">7<" in row and ">6<" in row and ">-1<" in row
    assert not list(admin_client.get(url, {"q": "no-such"}).context["cl"].result_list)
    assert admin_client.get(reverse("admin:channels_listingsyncstate_add")).status_code == 403


def test_drift_that_webhooks_explained_later_can_be_told_from_real_drift(admin_client, listing):
    from channels.models import DriftRecord

    def drift(expected: int, found: int, explained_units: int) -> DriftRecord:
        return factories.make_drift(
            listing, expected=expected, found=found, explained_units=explained_units
        )

    in_flight = drift(10, 8, 2)
    partly = drift(10, 7, 1)
    edit = drift(10, 40, 0)
    url = reverse("admin:channels_driftrecord_changelist")

    def listed(**params: str) -> set[DriftRecord]:
        return set(admin_client.get(url, params).context["cl"].result_list)

    assert listed(explained="yes") == {in_flight}
    assert listed(explained="no") == {partly, edit}
    assert listed() == {in_flight, partly, edit}


def submit_channel_form(admin_client, channel: Channel, **changes: str) -> Channel:
    """Save the channel's admin page as an operator would, with these fields changed (the
    secret fields blank: kept); the channel as saved."""
    data = {
        "platform": channel.platform,
        "name": channel.name,
        "slug": channel.slug,
        "mode": channel.mode,
        "api_base_url": channel.api_base_url,
        "credentials": "",
        "webhook_secret": "",
        "rate_limit_per_s": "2",
        "out_of_stock_threshold": "0",
        "settle_window_s": "0",
        "max_push_attempts": "3",
        "platform_settings": "{}",
        "_save": "Save",
        **changes,
    }
    response = admin_client.post(reverse("admin:channels_channel_change", args=[channel.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    return Channel.objects.get(pk=channel.pk)


def test_the_channel_page_never_shows_its_secrets_and_a_blank_field_keeps_them(
    admin_client, channel
):
    from channels.admin import ChannelAdminForm

    page = admin_client.get(reverse("admin:channels_channel_change", args=[channel.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert SECRET not in body and "shpat-secret" not in body
    assert "Set now: access_token (values hidden)" in body

    kept = submit_channel_form(admin_client, channel, name="Renamed")
    assert (kept.name, kept.webhook_secret, kept.credentials) == (
        "Renamed",
        SECRET,
        {"access_token": "shpat-secret"},
    )
    replaced = submit_channel_form(
        admin_client,
        channel,
        webhook_secret="whsec-new-0123456789abcdefghij",
        credentials='{"access_token": "shpat-new"}',
    )
    assert (replaced.webhook_secret, replaced.credentials) == (
        "whsec-new-0123456789abcdefghij",
        {"access_token": "shpat-new"},
    )
    form = ChannelAdminForm(
        data={"credentials": '["not", "an", "object"]'},
        instance=Channel.objects.get(pk=channel.pk),
    )
    assert not form.is_valid() and "credentials" in form.errors


def test_a_new_webhook_secret_leaves_the_old_one_accepted_for_a_while(
    admin_client, channel, settings
):
    import datetime as dt

    from django.utils import timezone

    settings.WEBHOOK_SECRET_ROTATION_GRACE_S = 3600

    rotated = submit_channel_form(
        admin_client, channel, webhook_secret="whsec-next-0123456789abcdefghij"
    )
    assert (rotated.webhook_secret, rotated.previous_webhook_secret) == (
        "whsec-next-0123456789abcdefghij",
        SECRET,
    )
    assert rotated.previous_webhook_secret_until is not None
    left = rotated.previous_webhook_secret_until - timezone.now()
    assert dt.timedelta(minutes=59) < left <= dt.timedelta(hours=1)
    assert rotated.webhook_secrets(timezone.now()) == ["whsec-next-0123456789abcdefghij", SECRET]

    # A blank secret field keeps the rotation as it is.
    unchanged = submit_channel_form(admin_client, channel, name="Renamed")
    assert unchanged.previous_webhook_secret == SECRET

    ended = submit_channel_form(admin_client, channel, end_rotation="on")
    assert (ended.previous_webhook_secret, ended.previous_webhook_secret_until) == ("", None)
    assert ended.webhook_secrets(timezone.now()) == ["whsec-next-0123456789abcdefghij"]


def test_the_pipeline_records_of_other_platforms_and_of_order_polls_are_listed_read_only(
    admin_client,
):
    """Submitted writes and order polls have admin lists and no add page."""
    for name in ("submittedwrite", "orderpoll"):
        assert admin_client.get(reverse(f"admin:channels_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:channels_{name}_add")).status_code == 403


@pytest.mark.django_db
def test_a_listing_waiting_on_an_accepted_write_shows_pending_with_its_age(admin_client, sku):
    """The listing and sync-state pages say "pending on Amazon" and for how long, while the
    channel has accepted a write it has not applied; other listings show nothing."""
    import datetime as dt

    from django.utils import timezone

    from channels.models import ListingSyncState, SubmittedWrite

    amazon = factories.make_channel(platform=Channel.Platform.AMAZON, slug="amazon-pending")
    waiting = factories.make_listing(channel=amazon, sku=sku, external_id="SKU-WAITING")
    factories.make_listing(channel=amazon, sku=factories.make_sku(), external_id="SKU-DONE")
    SubmittedWrite.objects.create(
        listing=waiting,
        channel=amazon,
        submission_id="feed:50001:1",
        quantity=7,
        change_at=timezone.now() - dt.timedelta(minutes=12),
        submitted_at=timezone.now() - dt.timedelta(minutes=11),
    )
    ListingSyncState.objects.create(listing=waiting, last_pushed_quantity=7)

    listings_page = admin_client.get(reverse("admin:channels_listing_changelist")).content
    states_page = admin_client.get(reverse("admin:channels_listingsyncstate_changelist")).content
    listing_page = admin_client.get(
        reverse("admin:channels_listing_change", args=[waiting.pk])
    ).content

    for page in (listings_page, states_page, listing_page):
        assert b"pending on Amazon for 11\xc2\xa0minutes (7 units, attempt 1)" in page
    assert listings_page.count(b"pending on Amazon") == 1


def test_the_roll_up_backlog_admin_lists_the_attempts_waiting_and_takes_no_edits(admin_client):
    PushRollupBacklog.objects.create(attempt_id=424242)
    url = reverse("admin:channels_pushrollupbacklog_changelist")

    listed = admin_client.get(url)

    assert [row.attempt_id for row in listed.context["cl"].result_list] == [424242]
    assert admin_client.get(reverse("admin:channels_pushrollupbacklog_add")).status_code == 403
