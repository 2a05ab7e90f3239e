"""The admin, the CSV import, the API and the commands write through ``channels.services``:
an edit made there owes the same pushes as the service called directly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
import tablib
from django.urls import reverse

from channels import services
from channels.models import BufferRule, Channel, Listing, PendingPush
from channels.resources import ListingResource
from nventory import permissions
from tests import factories
from tests.bundles.helpers import make_bundle

pytestmark = pytest.mark.django_db


def owed() -> set[int]:
    return set(PendingPush.objects.values_list("listing_id", flat=True))


def spy(name: str) -> Any:
    """Records the calls of one service while it still does its work."""
    return mock.patch.object(services, name, wraps=getattr(services, name))


@pytest.fixture
def location():
    return factories.make_location()


@pytest.fixture
def channel(location):
    return factories.make_channel(locations=[location], slug="edited")


@pytest.fixture
def listings(channel):
    """Two mapped listings of the channel, owing nothing yet."""
    made = [factories.make_listing(channel=channel, sku=factories.make_sku()) for _ in range(2)]
    PendingPush.objects.all().delete()
    return made


def channel_form(channel: Channel | None, **changes: Any) -> dict[str, Any]:
    """The POST body of the channel's admin page (secret fields blank: kept)."""
    data: dict[str, Any] = {
        "platform": Channel.Platform.SHOPIFY,
        "name": "Edited",
        "slug": "edited",
        "mode": Channel.Mode.SHADOW,
        "api_base_url": "http://127.0.0.1:9/",
        "credentials": "",
        "webhook_secret": "",
        "rate_limit_per_s": "2",
        "out_of_stock_threshold": "0",
        "settle_window_s": "0",
        "max_push_attempts": "3",
        "platform_settings": "{}",
        "_save": "Save",
    }
    if channel is not None:
        data.update(
            {
                "platform": channel.platform,
                "name": channel.name,
                "slug": channel.slug,
                "mode": channel.mode,
                "api_base_url": channel.api_base_url,
                "locations": [str(pk) for pk in channel.locations.values_list("pk", flat=True)],
            }
        )
    return {**data, **changes}


def saved(response: Any) -> None:
    """The admin accepted the form (it redirects); its errors otherwise."""
    assert response.status_code == 302, response.context["adminform"].form.errors


# -----------------------------------------------------------------------------------------
# Channels in the admin
# -----------------------------------------------------------------------------------------


def test_a_channel_added_in_the_admin_is_created_by_the_service_with_its_locations(
    admin_client, location
):
    """The add page creates the channel through create_channel, with its secret and locations."""
    with spy("create_channel") as create_channel:
        response = admin_client.post(
            reverse("admin:channels_channel_add"),
            channel_form(
                None, webhook_secret="whsec-new-0123456789abcdefghij", locations=[str(location.pk)]
            ),
        )
    saved(response)
    create_channel.assert_called_once()
    channel = Channel.objects.get(slug="edited")
    assert list(channel.locations.all()) == [location]
    assert channel.webhook_secret == "whsec-new-0123456789abcdefghij"
    assert response.url == reverse("admin:channels_channel_changelist")


def test_a_mode_change_in_the_admin_owes_the_channels_listings_and_a_rename_owes_nothing(
    admin_client, channel, listings
):
    """The change page saves through update_channel: a rename owes nothing, a new mode owes all."""
    url = reverse("admin:channels_channel_change", args=[channel.pk])

    saved(admin_client.post(url, channel_form(channel, name="Renamed")))
    assert Channel.objects.get(pk=channel.pk).name == "Renamed"
    assert owed() == set()

    with spy("update_channel") as update_channel:
        saved(admin_client.post(url, channel_form(channel, mode=Channel.Mode.ACTIVE)))
    update_channel.assert_called_once()
    assert owed() == {listing.pk for listing in listings}


def test_new_locations_in_the_admin_are_set_by_the_service_and_owe_the_listings(
    admin_client, channel, listings
):
    """New locations on the change page go through set_channel_locations and owe the listings."""
    other = factories.make_location()
    url = reverse("admin:channels_channel_change", args=[channel.pk])

    with spy("set_channel_locations") as set_channel_locations:
        saved(admin_client.post(url, channel_form(channel, locations=[str(other.pk)])))

    set_channel_locations.assert_called_once()
    assert list(Channel.objects.get(pk=channel.pk).locations.all()) == [other]
    assert owed() == {listing.pk for listing in listings}


def test_a_new_secret_in_the_admin_is_rotated_by_the_service(admin_client, channel):
    """A new secret on the change page is a rotation: the old one stays accepted."""
    old_secret = channel.webhook_secret
    url = reverse("admin:channels_channel_change", args=[channel.pk])

    with spy("rotate_webhook_secret") as rotate:
        saved(
            admin_client.post(
                url, channel_form(channel, webhook_secret="whsec-next-0123456789abcdefghij")
            )
        )

    rotate.assert_called_once_with(
        channel_id=channel.pk, new_secret="whsec-next-0123456789abcdefghij"
    )
    rotated = Channel.objects.get(pk=channel.pk)
    assert (rotated.webhook_secret, rotated.previous_webhook_secret) == (
        "whsec-next-0123456789abcdefghij",
        old_secret,
    )


# -----------------------------------------------------------------------------------------
# The SKU map: admin and CSV import
# -----------------------------------------------------------------------------------------


def listing_form(channel: Channel, sku: Any, external_id: str) -> dict[str, Any]:
    return {
        "channel": str(channel.pk),
        "sku": str(sku.pk) if sku else "",
        "external_id": external_id,
        "external_sku": "",
        "extra_identifiers": "{}",
        "is_active": "on",
        "_save": "Save",
    }


def test_a_listing_mapped_in_the_admin_is_owed_a_push(admin_client, channel):
    """A gap added in the admin owes nothing; mapping or remapping it owes it a push."""
    sku, other_sku = factories.make_sku(), factories.make_sku()

    with spy("create_listing") as create_listing:
        saved(
            admin_client.post(
                reverse("admin:channels_listing_add"), listing_form(channel, None, "501")
            )
        )
    create_listing.assert_called_once()
    listing = Listing.objects.get(channel=channel, external_id="501")
    assert owed() == set()  # a gap: nothing to push until it is mapped

    url = reverse("admin:channels_listing_change", args=[listing.pk])
    with spy("update_listing") as update_listing:
        saved(admin_client.post(url, listing_form(channel, sku, "501")))
    update_listing.assert_called_once()
    assert Listing.objects.get(pk=listing.pk).sku == sku
    assert owed() == {listing.pk}

    PendingPush.objects.all().delete()
    saved(admin_client.post(url, listing_form(channel, other_sku, "501")))
    assert owed() == {listing.pk}


def test_a_listing_page_never_moves_it_to_another_channel(admin_client, channel, listings):
    """The channel of a saved listing is read-only: a posted channel is ignored."""
    other = factories.make_channel()
    listing = listings[0]
    url = reverse("admin:channels_listing_change", args=[listing.pk])

    saved(admin_client.post(url, listing_form(other, listing.sku, listing.external_id)))

    assert Listing.objects.get(pk=listing.pk).channel == channel


def test_the_csv_import_owes_a_push_to_each_listing_it_maps_or_remaps(channel):
    """Imported rows owe pushes to the listings they map; an unchanged file owes nothing."""
    mug, cup = factories.make_sku(code="MUG-9"), factories.make_sku(code="CUP-9")
    header = "channel,external_id,external_sku,sku,extra_identifiers,is_active\n"

    def run(rows: str) -> None:
        dataset = tablib.Dataset().load(header + rows, format="csv")
        result = ListingResource().import_data(dataset, dry_run=False)
        assert not result.has_errors() and not result.has_validation_errors()

    run("edited,1,,MUG-9,{},1\nedited,2,,,{},1\n")
    first, gap = (Listing.objects.get(channel=channel, external_id=n) for n in ("1", "2"))
    assert first.sku == mug
    assert owed() == {first.pk}

    PendingPush.objects.all().delete()
    run("edited,1,,MUG-9,{},1\nedited,2,,CUP-9,{},1\n")  # the gap is mapped now
    assert Listing.objects.get(pk=gap.pk).sku == cup
    assert owed() == {gap.pk}

    PendingPush.objects.all().delete()
    run("edited,1,,MUG-9,{},1\nedited,2,,CUP-9,{},1\n")  # nothing changed
    assert owed() == set()


def test_a_csv_import_dry_run_saves_nothing_and_owes_nothing(channel):
    """The import's preview (a dry run) rolls back its listings and their pushes."""
    factories.make_sku(code="MUG-8")
    dataset = tablib.Dataset().load(
        "channel,external_id,external_sku,sku,extra_identifiers,is_active\nedited,1,,MUG-8,{},1\n",
        format="csv",
    )
    result = ListingResource().import_data(dataset, dry_run=True)
    assert not result.has_errors()
    assert not Listing.objects.exists()
    assert owed() == set()


# -----------------------------------------------------------------------------------------
# Buffer rules in the admin
# -----------------------------------------------------------------------------------------


def rule_form(channel: Channel, **values: str) -> dict[str, Any]:
    return {
        "channel": str(channel.pk),
        "sku": "",
        "listing": "",
        "percent": "0",
        "fixed_units": "0",
        "max_cap": "",
        "cap_starts_at_0": "",
        "cap_starts_at_1": "",
        "cap_ends_at_0": "",
        "cap_ends_at_1": "",
        "_save": "Save",
        **values,
    }


def test_a_buffer_rule_added_or_changed_in_the_admin_owes_its_listings_a_push(
    admin_client, channel, listings
):
    """Adding or changing a rule in the admin owes the listings of its scopes, no other
    channel's."""
    other_channel = factories.make_channel()
    factories.make_listing(channel=other_channel, sku=listings[0].sku)
    PendingPush.objects.all().delete()

    saved(admin_client.post(reverse("admin:channels_bufferrule_add"), rule_form(channel)))
    rule = BufferRule.objects.get(channel=channel)
    assert owed() == {listing.pk for listing in listings}

    PendingPush.objects.all().delete()
    saved(
        admin_client.post(
            reverse("admin:channels_bufferrule_change", args=[rule.pk]),
            rule_form(channel, sku=str(listings[1].sku_id), fixed_units="2"),
        )
    )
    assert BufferRule.objects.get(pk=rule.pk).fixed_units == 2
    # Both scopes: the channel default it was and the SKU override it is.
    assert owed() == {listing.pk for listing in listings}


def test_a_buffer_rule_deleted_in_the_admin_owes_its_listings_a_push(
    admin_client, channel, listings
):
    """Deleting a rule from its page owes the listing it governed."""
    rule = factories.make_buffer_rule(channel=channel, listing=listings[0], max_cap=1)
    PendingPush.objects.all().delete()

    response = admin_client.post(
        reverse("admin:channels_bufferrule_delete", args=[rule.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not BufferRule.objects.exists()
    assert owed() == {listings[0].pk}


def test_the_bulk_delete_of_buffer_rules_owes_their_listings_a_push(
    admin_client, channel, listings
):
    """The changelist's delete-selected action goes through delete_buffer_rules."""
    rules = [
        factories.make_buffer_rule(channel=channel, listing=listing, percent=Decimal(5))
        for listing in listings
    ]
    PendingPush.objects.all().delete()

    with spy("delete_buffer_rules") as delete_buffer_rules:
        response = admin_client.post(
            reverse("admin:channels_bufferrule_changelist"),
            {
                "action": "delete_selected",
                "_selected_action": [str(rule.pk) for rule in rules],
                "post": "yes",
            },
        )

    assert response.status_code == 302
    delete_buffer_rules.assert_called_once()
    assert not BufferRule.objects.exists()
    assert owed() == {listing.pk for listing in listings}


def test_reverting_a_buffer_rule_from_its_history_owes_its_listings_a_push(
    admin_client, channel, listings
):
    """Reverting a rule to an earlier version from its history owes its listings a push."""
    rule = factories.make_buffer_rule(channel=channel, fixed_units=1)
    services.update_buffer_rule(
        rule_id=rule.pk,
        fields=services.BufferRuleFields(
            **{**vars(services.BufferRuleFields.of(rule)), "fixed_units": 4}
        ),
    )
    first = rule.history.earliest("history_date")
    PendingPush.objects.all().delete()

    response = admin_client.post(
        reverse("admin:channels_bufferrule_simple_history", args=[rule.pk, first.history_id]),
        rule_form(channel, fixed_units="1"),
    )

    assert response.status_code == 302
    assert BufferRule.objects.get(pk=rule.pk).fixed_units == 1
    assert owed() == {listing.pk for listing in listings}


# -----------------------------------------------------------------------------------------
# BOM edits from the bundles API and admin reach the bundles' listings
# -----------------------------------------------------------------------------------------


@pytest.fixture
def bundle_listing(channel):
    part, other = factories.make_sku(code="PART"), factories.make_sku(code="OTHER")
    kit = make_bundle((part, 1), code="KIT")
    listing = factories.make_listing(channel=channel, sku=kit)
    factories.make_listing(channel=channel, sku=part)
    PendingPush.objects.all().delete()
    return kit, other, listing


def test_a_bom_replaced_through_the_api_owes_the_bundles_listings_a_push(bundle_listing):
    """PUT of a bundle's BOM owes the bundle's listing a push, not its component's."""
    kit, other, listing = bundle_listing
    api = factories.api_client(
        factories.make_user(username="catalogue-bot", roles=[permissions.CHANNEL_MANAGER])
    )

    answer = api.put(
        reverse("bundles_api:bundle-detail", args=[kit.code]),
        {"lines": [{"component": other.code, "quantity": 2}]},
        format="json",
    )

    assert answer.status_code == 200, answer.json()
    assert owed() == {listing.pk}


def test_a_bom_edited_in_the_admin_owes_the_bundles_listings_a_push(admin_client, bundle_listing):
    """Editing a bundle's lines in the admin owes the bundle's listing a push."""
    kit, other, listing = bundle_listing
    [line] = kit.bom_lines.all()
    data = {
        "code": kit.code,
        "name": kit.name,
        "category": "",
        "is_active": "on",
        "bom_lines-TOTAL_FORMS": "1",
        "bom_lines-INITIAL_FORMS": "1",
        "bom_lines-MIN_NUM_FORMS": "0",
        "bom_lines-MAX_NUM_FORMS": "1000",
        "bom_lines-0-id": str(line.pk),
        "bom_lines-0-bundle": str(kit.pk),
        "bom_lines-0-component": str(other.pk),
        "bom_lines-0-quantity": "3",
    }

    response = admin_client.post(reverse("admin:bundles_bundle_change", args=[kit.pk]), data)

    assert response.status_code == 302
    assert owed() == {listing.pk}
