"""The services that write channels, the SKU map and buffer rules: each edit owes exactly
the listings it affects a push, in its own transaction."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from channels import services
from channels.models import BufferRule, Channel, Listing, PendingPush
from channels.pipeline import outbox, workers
from tests import factories
from tests.bundles.helpers import make_bundle

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)


def owed() -> set[int]:
    """The listings that owe their channel a push."""
    return set(PendingPush.objects.values_list("listing_id", flat=True))


def forget_owed() -> None:
    PendingPush.objects.all().delete()


@pytest.fixture
def location():
    return factories.make_location()


@pytest.fixture
def shop(location):
    """Two channels on one location; each lists SKUs A and B, plus an inactive listing
    (never owed a push) and an unmapped one."""
    a, b = factories.make_sku(code="A"), factories.make_sku(code="B")
    made = {}
    for name in ("one", "two"):
        channel = factories.make_channel(locations=[location], slug=f"shop-{name}")
        made[name] = channel
        made[f"{name}-a"] = factories.make_listing(channel=channel, sku=a)
        made[f"{name}-b"] = factories.make_listing(channel=channel, sku=b)
        made[f"{name}-inactive"] = factories.make_listing(channel=channel, sku=a, is_active=False)
        made[f"{name}-unmapped"] = factories.make_listing(channel=channel)
    made["a"], made["b"] = a, b
    forget_owed()
    return made


def mapped_listings(shop, name: str) -> set[int]:
    return {shop[f"{name}-a"].pk, shop[f"{name}-b"].pk}


def active_listings(shop, name: str) -> set[int]:
    """Mapped or not: an unmapped listing's push tells the channel 0."""
    return mapped_listings(shop, name) | {shop[f"{name}-unmapped"].pk}


def fields_of(channel: Channel, **changes) -> services.ChannelFields:
    return services.ChannelFields(**{**vars(services.ChannelFields.of(channel)), **changes})


# -----------------------------------------------------------------------------------------
# Channels
# -----------------------------------------------------------------------------------------


def test_channel_fields_default_to_the_models_defaults():
    """A channel created with only the required fields is the model's default channel."""
    fields = services.ChannelFields(platform="shopify", name="N", slug="n", api_base_url="u")
    model_default = services.ChannelFields.of(
        Channel(platform="shopify", name="N", slug="n", api_base_url="u")
    )
    assert fields == model_default


def test_a_new_channel_owes_nothing_and_announces_its_push_queue_once_committed(
    location, monkeypatch, django_capture_on_commit_callbacks
):
    """Workers are told to consume the new channel's queue after the commit, not before."""
    broadcasts = []
    monkeypatch.setattr(
        workers.app.control, "broadcast", lambda *args, **kwargs: broadcasts.append(kwargs)
    )
    with django_capture_on_commit_callbacks(execute=True):
        channel = services.create_channel(
            fields=services.ChannelFields(
                platform=Channel.Platform.SHOPIFY,
                name="New",
                slug="new",
                api_base_url="http://127.0.0.1:9/",
            ),
            webhook_secret="whsec-1-0123456789abcdefghijk",
            location_ids=[location.pk],
        )
        assert broadcasts == []
    assert broadcasts == [{"arguments": {"queue": f"push.{channel.pk}"}, "reply": False}]
    assert list(channel.locations.all()) == [location]
    assert channel.webhook_secret == "whsec-1-0123456789abcdefghijk"
    assert owed() == set()


def test_an_invalid_channel_is_refused_and_nothing_is_saved():
    """An unknown platform or a malformed URL raises ValidationError and saves no channel."""
    with pytest.raises(ValidationError):
        services.create_channel(
            fields=services.ChannelFields(
                platform="no-such-platform", name="X", slug="x", api_base_url="not a url"
            )
        )
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"mode": Channel.Mode.ACTIVE},
        {"out_of_stock_threshold": 5},
        {"platform_settings": {"location_id": 2}},
        {"api_base_url": "http://127.0.0.1:10/"},
        {"credentials": {"access_token": "new"}},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_a_channel_edit_of_what_it_is_sent_owes_its_active_listings_only(shop, changes):
    """The edited channel's active listings: not the other channel's, not an inactive one."""
    channel = shop["one"]
    services.update_channel(channel_id=channel.pk, fields=fields_of(channel, **changes))
    assert owed() == active_listings(shop, "one")
    saved = Channel.objects.get(pk=channel.pk)
    [(name, value)] = changes.items()
    assert getattr(saved, name) == value


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "Renamed"},
        {"rate_limit_per_s": 9},
        {"settle_window_s": 30},
        {"max_push_attempts": 5},
        {},
    ],
    ids=lambda changes: next(iter(changes), "nothing"),
)
def test_a_channel_change_that_alters_no_pushed_figure_owes_nothing(shop, changes):
    """A new name, rate limit, settle window or attempt count is saved and owes no push."""
    channel = shop["one"]
    services.update_channel(channel_id=channel.pk, fields=fields_of(channel, **changes))
    assert owed() == set()
    saved = Channel.objects.get(pk=channel.pk)
    assert all(getattr(saved, name) == value for name, value in changes.items())


def test_new_locations_owe_the_channels_active_listings_and_the_same_ones_owe_nothing(shop):
    """Another set of locations owes the channel's active listings a push; the same set, none."""
    channel = shop["one"]
    other = factories.make_location()

    services.set_channel_locations(channel_id=channel.pk, location_ids=[other.pk])
    assert set(channel.locations.all()) == {other}
    assert owed() == active_listings(shop, "one")

    forget_owed()
    services.set_channel_locations(channel_id=channel.pk, location_ids=[other.pk])
    assert owed() == set()

    services.set_channel_locations(channel_id=channel.pk, location_ids=[])
    assert not channel.locations.exists()
    assert owed() == active_listings(shop, "one")


def test_owing_a_full_sync_owes_every_active_listing_of_the_channel(shop):
    """A full sync owes every active listing of that channel, and no other channel's."""
    services.owe_channel_full_sync(channel_id=shop["two"].pk)
    assert owed() == active_listings(shop, "two")


# -----------------------------------------------------------------------------------------
# Webhook secrets
# -----------------------------------------------------------------------------------------


def test_a_rotated_secret_leaves_the_old_one_accepted_for_the_grace_period(settings):
    """After a rotation both secrets are accepted until the grace period ends, then only the
    new."""
    settings.WEBHOOK_SECRET_ROTATION_GRACE_S = 3600
    channel = factories.make_channel(webhook_secret="whsec-old-0123456789abcdefghij")
    before = timezone.now()

    rotated = services.rotate_webhook_secret(
        channel_id=channel.pk, new_secret="whsec-new-0123456789abcdefghij"
    )

    assert rotated.webhook_secret == "whsec-new-0123456789abcdefghij"
    assert rotated.previous_webhook_secret == "whsec-old-0123456789abcdefghij"
    assert rotated.previous_webhook_secret_until is not None
    grace = dt.timedelta(hours=1)
    assert before + grace <= rotated.previous_webhook_secret_until <= timezone.now() + grace
    assert rotated.webhook_secrets(before) == [
        "whsec-new-0123456789abcdefghij",
        "whsec-old-0123456789abcdefghij",
    ]
    assert rotated.webhook_secrets(before + grace + dt.timedelta(seconds=1)) == [
        "whsec-new-0123456789abcdefghij"
    ]


def test_a_second_rotation_drops_the_first_secret_and_the_same_secret_changes_nothing():
    """Only the secret just replaced stays accepted; setting the current secret again changes
    nothing."""
    channel = factories.make_channel(webhook_secret="whsec-1-0123456789abcdefghijk")
    services.rotate_webhook_secret(
        channel_id=channel.pk, new_secret="whsec-2-0123456789abcdefghijk"
    )
    rotated = services.rotate_webhook_secret(
        channel_id=channel.pk, new_secret="whsec-3-0123456789abcdefghijk"
    )
    assert (rotated.webhook_secret, rotated.previous_webhook_secret) == (
        "whsec-3-0123456789abcdefghijk",
        "whsec-2-0123456789abcdefghijk",
    )

    until = rotated.previous_webhook_secret_until
    again = services.rotate_webhook_secret(
        channel_id=channel.pk, new_secret="whsec-3-0123456789abcdefghijk"
    )
    assert (again.previous_webhook_secret, again.previous_webhook_secret_until) == (
        "whsec-2-0123456789abcdefghijk",
        until,
    )


def test_a_first_secret_is_not_a_rotation_and_a_blank_one_is_refused():
    """A channel without a secret gets one with no previous secret; a blank one is refused."""
    channel = factories.make_channel(webhook_secret="")
    first = services.rotate_webhook_secret(
        channel_id=channel.pk, new_secret="whsec-1-0123456789abcdefghijk"
    )
    assert (first.webhook_secret, first.previous_webhook_secret) == (
        "whsec-1-0123456789abcdefghijk",
        "",
    )
    assert first.previous_webhook_secret_until is None

    with pytest.raises(services.InvalidWebhookSecret):
        services.rotate_webhook_secret(channel_id=channel.pk, new_secret="")
    assert Channel.objects.get(pk=channel.pk).webhook_secret == "whsec-1-0123456789abcdefghijk"


def test_revoking_the_previous_secret_ends_the_rotation_at_once():
    """Once revoked, the replaced secret is no longer accepted, whatever the grace period."""
    channel = factories.make_channel(webhook_secret="whsec-old-0123456789abcdefghij")
    services.rotate_webhook_secret(
        channel_id=channel.pk, new_secret="whsec-new-0123456789abcdefghij"
    )

    revoked = services.revoke_previous_webhook_secret(channel_id=channel.pk)

    assert (revoked.previous_webhook_secret, revoked.previous_webhook_secret_until) == ("", None)
    assert revoked.webhook_secrets(timezone.now()) == ["whsec-new-0123456789abcdefghij"]


# -----------------------------------------------------------------------------------------
# The SKU map
# -----------------------------------------------------------------------------------------


def test_a_new_listing_is_owed_a_push_only_when_active_and_mapped(shop):
    """Of three new listings only the active, mapped one is owed a push."""
    channel, sku = shop["one"], factories.make_sku()

    mapped = factories.make_listing(channel=channel, sku=sku)
    factories.make_listing(channel=channel, sku=sku, is_active=False)
    factories.make_listing(channel=channel)

    assert owed() == {mapped.pk}


def test_a_listing_with_a_taken_external_id_is_refused(shop):
    """A second listing of the same platform item on a channel raises ValidationError."""
    with pytest.raises(ValidationError):
        factories.make_listing(channel=shop["one"], external_id=shop["one-a"].external_id)
    assert Listing.objects.filter(external_id=shop["one-a"].external_id).count() == 1


@pytest.mark.parametrize(
    ("listing", "changes"),
    [
        ("one-unmapped", {"sku": "a"}),
        ("one-a", {"sku": "b"}),
        ("one-inactive", {"is_active": True}),
        ("one-a", {"external_id": "moved-item"}),
        ("one-a", {"sku": None}),
    ],
    ids=["mapped", "remapped", "activated", "other-item", "unmapped"],
)
def test_a_listing_edit_of_what_is_pushed_where_owes_that_listing_alone(shop, listing, changes):
    """A new SKU, no SKU, another item or an activation owes that listing a push, no other."""
    target = shop[listing]
    fields = vars(services.ListingFields.of(target)).copy()
    for name, value in changes.items():
        if name == "sku":
            fields["sku_id"] = shop[value].pk if value else None
        else:
            fields[name] = value

    services.update_listing(listing_id=target.pk, fields=services.ListingFields(**fields))

    assert owed() == {target.pk}


@pytest.mark.parametrize(
    "changes",
    [
        {"external_sku": "SELLER-CODE"},
        {"extra_identifiers": {"variant_id": "99"}},
        {"is_active": False},
        {},
    ],
    ids=["seller-code", "identifiers", "deactivated", "nothing"],
)
def test_a_listing_edit_that_leaves_nothing_to_push_owes_nothing(shop, changes):
    """A new seller code or identifiers, a deactivation or no change owes no push."""
    target = shop["one-a"]
    fields = services.ListingFields(**{**vars(services.ListingFields.of(target)), **changes})

    services.update_listing(listing_id=target.pk, fields=fields)

    assert owed() == set()
    saved = Listing.objects.get(pk=target.pk)
    assert all(getattr(saved, name) == value for name, value in changes.items())


def test_a_listing_never_moves_to_another_channel(shop):
    """Naming another channel raises ListingMovesChannel and leaves the listing where it was."""
    target = shop["one-a"]
    fields = services.ListingFields(
        **{**vars(services.ListingFields.of(target)), "channel_id": shop["two"].pk}
    )
    with pytest.raises(services.ListingMovesChannel):
        services.update_listing(listing_id=target.pk, fields=fields)
    assert Listing.objects.get(pk=target.pk).channel_id == shop["one"].pk


def test_mapping_a_sku_makes_it_looked_up_again_though_remembered_as_unlisted(
    shop, location, django_capture_on_commit_callbacks
):
    """A stock change of a SKU found listed nowhere wakes no pusher for a few seconds; a
    listing mapped to it ends that at once."""
    sku = factories.make_sku()
    outbox.forget_unlisted()
    assert outbox.channels_owing_for_skus([sku.pk]) == set()  # now remembered as unlisted

    target = shop["one-unmapped"]
    fields = services.ListingFields(
        **{**vars(services.ListingFields.of(target)), "sku_id": sku.pk}
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.update_listing(listing_id=target.pk, fields=fields)

    assert outbox.channels_owing_for_skus([sku.pk]) == {shop["one"].pk}


# -----------------------------------------------------------------------------------------
# Buffer rules
# -----------------------------------------------------------------------------------------


def test_a_channel_rule_owes_every_mapped_listing_of_its_channel_alone(shop):
    """Not the unmapped listing: a rule changes nothing of the 0 it is pushed."""
    factories.make_buffer_rule(channel=shop["one"], percent=Decimal(10))
    assert owed() == mapped_listings(shop, "one")


def test_a_sku_rule_owes_that_skus_listings_on_its_channel_alone(shop):
    """A SKU override owes that SKU's listing on its channel, not on the other channel."""
    factories.make_buffer_rule(channel=shop["two"], sku=shop["b"], fixed_units=2)
    assert owed() == {shop["two-b"].pk}


def test_a_listing_rule_owes_that_listing_alone(shop):
    """A listing override owes that listing alone."""
    factories.make_buffer_rule(channel=shop["one"], listing=shop["one-a"], max_cap=3)
    assert owed() == {shop["one-a"].pk}


def test_a_rule_moved_to_another_sku_owes_the_listings_of_both(shop):
    """Moving an override from SKU A to SKU B owes the listings of both."""
    rule = factories.make_buffer_rule(channel=shop["one"], sku=shop["a"], fixed_units=2)
    forget_owed()
    fields = services.BufferRuleFields.of(rule)

    services.update_buffer_rule(
        rule_id=rule.pk,
        fields=services.BufferRuleFields(**{**vars(fields), "sku_id": shop["b"].pk}),
    )

    assert owed() == {shop["one-a"].pk, shop["one-b"].pk}
    assert BufferRule.objects.get(pk=rule.pk).sku_id == shop["b"].pk


def test_a_rule_edit_owes_its_scope_and_no_edit_owes_nothing(shop):
    """A saved rule with the same values owes nothing; a new value owes its scope."""
    rule = factories.make_buffer_rule(channel=shop["two"], sku=shop["a"], fixed_units=2)
    forget_owed()
    fields = services.BufferRuleFields.of(rule)

    services.update_buffer_rule(rule_id=rule.pk, fields=fields)
    assert owed() == set()

    services.update_buffer_rule(
        rule_id=rule.pk, fields=services.BufferRuleFields(**{**vars(fields), "fixed_units": 5})
    )
    assert owed() == {shop["two-a"].pk}
    assert BufferRule.objects.get(pk=rule.pk).fixed_units == 5


def test_deleting_rules_owes_the_listings_they_governed(shop):
    """Deleting rules owes the listings in their scopes; unknown ids are skipped."""
    channel_rule = factories.make_buffer_rule(channel=shop["one"], percent=Decimal(10))
    listing_rule = factories.make_buffer_rule(channel=shop["two"], listing=shop["two-b"])
    forget_owed()

    deleted = services.delete_buffer_rules(rule_ids=[channel_rule.pk, listing_rule.pk, 0])

    assert deleted == 2
    assert not BufferRule.objects.exists()
    assert owed() == mapped_listings(shop, "one") | {shop["two-b"].pk}
    assert services.delete_buffer_rules(rule_ids=[channel_rule.pk]) == 0


def test_an_invalid_rule_is_refused_and_owes_nothing(shop):
    """A listing of another channel, both scopes or a percent over 100 save nothing, owe
    nothing."""
    with pytest.raises(ValidationError):
        factories.make_buffer_rule(channel=shop["two"], listing=shop["one-a"])
    with pytest.raises(ValidationError):
        factories.make_buffer_rule(channel=shop["one"], sku=shop["a"], listing=shop["one-a"])
    with pytest.raises(ValidationError):
        factories.make_buffer_rule(channel=shop["one"], percent=Decimal(101))
    assert not BufferRule.objects.exists()
    assert owed() == set()


# -----------------------------------------------------------------------------------------
# BOM edits, through the hook bundles offers
# -----------------------------------------------------------------------------------------


def test_a_bom_edit_owes_the_active_listings_of_the_bundle_and_its_containers(shop, location):
    """A BOM edit owes the active listings of the bundle and of bundles containing it, no other."""
    from bundles import services as bundle_services

    a, b = shop["a"], shop["b"]
    gift = make_bundle((a, 1), code="GIFT")
    outer = make_bundle((gift, 2), code="OUTER")
    other = make_bundle((b, 1), code="OTHER")
    channel = shop["one"]
    gift_listing = factories.make_listing(channel=channel, sku=gift)
    outer_listing = factories.make_listing(channel=shop["two"], sku=outer)
    factories.make_listing(channel=channel, sku=gift, is_active=False)
    factories.make_listing(channel=channel, sku=other)
    forget_owed()

    bundle_services.set_bom(bundle=gift, lines=[(a, 1), (b, 1)])

    assert owed() == {gift_listing.pk, outer_listing.pk}
