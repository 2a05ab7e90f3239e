"""Test data builders; every stock change still goes through the services."""

from __future__ import annotations

import itertools
import uuid

from inventory import services
from inventory.models import Location, Sku

_sequence = itertools.count(1)


def make_sku(**fields) -> Sku:
    number = next(_sequence)
    fields.setdefault("code", f"SKU-{number:05d}")
    fields.setdefault("name", f"Test product {number}")
    return Sku.objects.create(**fields)


def make_location(**fields) -> Location:
    number = next(_sequence)
    fields.setdefault("code", f"WH-{number:03d}")
    fields.setdefault("name", f"Warehouse {number}")
    return Location.objects.create(**fields)


def context(prefix: str = "test", **fields) -> services.EventContext:
    return services.EventContext(idempotency_key=f"{prefix}-{uuid.uuid4()}", **fields)


def stock(sku: Sku, location: Location, on_hand: int) -> None:
    services.receive_stock(
        sku_id=sku.pk, location_id=location.pk, quantity=on_hand, context=context("seed")
    )


def make_channel(*, locations=(), webhook_secret=None, **fields):
    """A channel created as the admin creates one (``channels.services``)."""
    from channels import services
    from channels.models import Channel

    number = next(_sequence)
    fields.setdefault("platform", Channel.Platform.SHOPIFY)
    fields.setdefault("name", f"Channel {number}")
    fields.setdefault("slug", f"channel-{number}")
    fields.setdefault("api_base_url", "http://127.0.0.1:9/")
    return services.create_channel(
        fields=services.ChannelFields(**fields),
        webhook_secret=f"webhook-secret-of-channel-{number:08d}"
        if webhook_secret is None
        else webhook_secret,
        location_ids=[location.pk for location in locations],
    )


def make_listing(*, channel, sku=None, **fields):
    """A listing added to the SKU map as the admin adds one: an active, mapped one is owed
    a push."""
    from channels import services

    number = next(_sequence)
    fields.setdefault("external_id", f"{number}")
    return services.create_listing(
        fields=services.ListingFields(
            channel_id=channel.pk, sku_id=sku.pk if sku is not None else None, **fields
        )
    )


def make_drift(listing, *, expected: int, found: int, explained_units: int = 0):
    """A drift a compare-and-set found on the listing, ``explained_units`` of it put down to
    an order already."""
    from channels.models import DriftRecord

    return DriftRecord.objects.create(
        channel_id=listing.channel_id,
        listing=listing,
        expected_quantity=expected,
        channel_quantity=found,
        detected_by=DriftRecord.DetectedBy.COMPARE_AND_SET,
        explained_units=explained_units,
        explained_by="orders/create 1" if explained_units else "",
    )


def make_buffer_rule(*, channel, sku=None, listing=None, **values):
    """A buffer rule created as the admin creates one: the listings it governs are owed a
    push."""
    from channels import services

    return services.create_buffer_rule(
        fields=services.BufferRuleFields(
            channel_id=channel.pk,
            sku_id=sku.pk if sku is not None else None,
            listing_id=listing.pk if listing is not None else None,
            **values,
        )
    )


def make_user(*permission_names: str, roles=(), permissions=(), username=None, **fields):
    """A user in the given roles (group names of ``nventory.permissions.ROLES``) holding
    these permissions ("app_label.codename", as ``nventory.permissions`` names them, given
    positionally or as ``permissions``); none: one who may only look."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    fields.setdefault("password", "a-password-for-tests")
    user = get_user_model().objects.create_user(
        username=username or f"user-{next(_users)}", **fields
    )
    user.groups.add(*Group.objects.filter(name__in=roles))
    for name in (*permission_names, *permissions):
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return get_user_model().objects.get(pk=user.pk)  # a fresh instance: no stale perm cache


_users = itertools.count(1)


def api_client(user, *, expires_in=None):
    """A DRF test client sending a fresh API token of ``user``."""
    from rest_framework.test import APIClient

    from accounts import services as token_services

    issued = token_services.issue_token(user=user, expires_in=expires_in)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
    return client
