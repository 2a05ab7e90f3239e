"""Bulk edits: buffer rules for many SKUs or a category, and channel modes, at once."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import PermissionDenied

from channels import bulk_edits
from channels.models import BufferRule, Channel, PendingPush
from nventory import permissions
from tests import factories
from tests.channels.operators import make_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(location):
    """Two channels selling from one location; three SKUs of category "Mugs", one other."""
    channels = [factories.make_channel(locations=[location]) for _ in range(2)]
    mugs = [factories.make_sku(category="Mugs") for _ in range(3)]
    other = factories.make_sku(category="Plates")
    for sku in [*mugs, other]:
        factories.stock(sku, location, 100)
        for channel in channels:
            factories.make_listing(channel=channel, sku=sku)
    PendingPush.objects.all().delete()
    return channels, mugs, other


def test_selection_is_the_codes_and_the_category(catalog) -> None:
    _channels, mugs, other = catalog
    selected = bulk_edits.skus_in_selection(sku_codes=[other.code, " "], category="Mugs")
    assert set(selected) == {*mugs, other}
    assert list(bulk_edits.skus_in_selection()) == []
    assert bulk_edits.categories() == ["Mugs", "Plates"]


def test_preview_shows_each_listing_before_and_after(catalog) -> None:
    channels, mugs, _other = catalog
    preview = bulk_edits.preview_bulk_buffer_rules(
        channel_ids=[channel.pk for channel in channels],
        sku_ids=[sku.pk for sku in mugs],
        values=bulk_edits.BufferValues(percent=Decimal(20), fixed_units=3),
    )
    assert preview.rule_count == 6
    assert len(preview.pairs) == 6
    for pair in preview.pairs:
        (row,) = pair.rows
        assert row.current == 100
        assert row.previewed.listed == 77  # floor(100 x 0.8) - 3
    assert not BufferRule.objects.exists()


def test_applying_writes_one_rule_per_sku_and_channel_signed(catalog) -> None:
    channels, mugs, other = catalog
    factories.make_buffer_rule(channel=channels[0], sku=mugs[0], percent=Decimal(50))
    manager = make_operator(permissions.EDIT_BUFFERS)
    result = bulk_edits.apply_bulk_buffer_rules(
        actor=manager,
        channel_ids=[channel.pk for channel in channels],
        sku_ids=[sku.pk for sku in mugs],
        values=bulk_edits.BufferValues(percent=Decimal(20), fixed_units=3, max_cap=40),
        reason="Mugs: holiday buffer",
    )
    assert (result.created, result.updated, result.unchanged) == (5, 1, 0)
    rules = BufferRule.objects.filter(sku__in=mugs)
    assert rules.count() == 6
    assert {(rule.percent, rule.fixed_units, rule.max_cap) for rule in rules} == {
        (Decimal(20), 3, 40)
    }
    for rule in rules:
        entry = rule.history.latest()
        assert (entry.history_user, entry.history_change_reason) == (
            manager,
            "Mugs: holiday buffer",
        )
    assert not BufferRule.objects.filter(sku=other).exists()
    # Every listing of the edited SKUs is owed its new figure.
    assert PendingPush.objects.filter(listing__sku__in=mugs).count() == 6
    again = bulk_edits.apply_bulk_buffer_rules(
        actor=manager,
        channel_ids=[channels[0].pk],
        sku_ids=[mugs[0].pk],
        values=bulk_edits.BufferValues(percent=Decimal(20), fixed_units=3, max_cap=40),
        reason="again",
    )
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)


def test_bulk_buffer_edit_needs_the_edit_buffers_permission(catalog) -> None:
    channels, mugs, _other = catalog
    with pytest.raises(PermissionDenied):
        bulk_edits.apply_bulk_buffer_rules(
            actor=make_operator(permissions.MANAGE_CHANNELS),
            channel_ids=[channels[0].pk],
            sku_ids=[mugs[0].pk],
            values=bulk_edits.BufferValues(percent=Decimal(5)),
            reason="",
        )
    assert not BufferRule.objects.exists()


def test_an_edit_past_the_limit_is_refused(catalog, monkeypatch) -> None:
    channels, mugs, _other = catalog
    monkeypatch.setattr(bulk_edits, "MAX_RULES_PER_EDIT", 5)
    with pytest.raises(bulk_edits.EditTooLarge):
        bulk_edits.apply_bulk_buffer_rules(
            actor=make_operator(permissions.EDIT_BUFFERS),
            channel_ids=[channel.pk for channel in channels],
            sku_ids=[sku.pk for sku in mugs],
            values=bulk_edits.BufferValues(percent=Decimal(5)),
            reason="",
        )


def test_channel_modes_switch_together_and_are_logged(catalog) -> None:
    channels, _mugs, _other = catalog
    manager = make_operator(permissions.MANAGE_CHANNELS)
    changed = bulk_edits.set_channel_modes(
        actor=manager, channel_ids=[channel.pk for channel in channels], mode="active"
    )
    assert {channel.pk for channel in changed} == {channel.pk for channel in channels}
    assert set(Channel.objects.values_list("mode", flat=True)) == {"active"}
    # Starting to push owes every listing its figure.
    assert PendingPush.objects.count() == 8
    entries = LogEntry.objects.filter(user=manager)
    assert entries.count() == 2
    assert all("Shadow" in entry.change_message for entry in entries)
    assert (
        bulk_edits.set_channel_modes(actor=manager, channel_ids=[channels[0].pk], mode="active")
        == []
    )


def test_channel_modes_need_the_manage_channels_permission(catalog) -> None:
    channels, _mugs, _other = catalog
    with pytest.raises(PermissionDenied):
        bulk_edits.set_channel_modes(
            actor=make_operator(permissions.EDIT_BUFFERS),
            channel_ids=[channels[0].pk],
            mode="paused",
        )
    assert Channel.objects.get(pk=channels[0].pk).mode == "shadow"
