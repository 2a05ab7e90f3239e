"""The daily shadow-mode comparison: match rates, the 1% rule and the oversell replay."""

from __future__ import annotations

import pytest
from django.utils import timezone

from channels.models import Channel
from inventory import services as stock
from inventory.models import EventSource
from reconciliation import shadow
from tests import factories
from tests.reconciliation.conftest import drain

pytestmark = pytest.mark.django_db


# Committed statements: the replay orders the ledger and the shadow log by their times,
# which inside one test transaction would all be the transaction's start.
@pytest.mark.django_db(transaction=True)
def test_the_replay_names_the_orders_that_left_a_shadow_channel_listing_missing_units(
    make_sim_channel,
):
    """An order elsewhere takes 8 of 10; the hand-kept shadow channel still shows 10."""
    sim = make_sim_channel(items=2, mode=Channel.Mode.SHADOW)
    for listing in sim.listings:
        sim.set_on_channel(listing, 10)
    sold = sim.listings[0]
    stock.commit_order(
        sku_id=sold.sku_id,
        location_id=sim.location.pk,
        quantity=8,
        context=factories.context(
            source=EventSource.CHANNEL, actor="amazon-eu", external_reference="ORDER-77"
        ),
    )
    drain(sim.channel)  # the shadow log: would push 2, the channel shows 10

    run = shadow.compare_shadow_channel(channel_id=sim.channel.pk, day=timezone.localdate())

    assert run is not None and run.kind == "shadow_compare" and run.status == "done"
    end_of_day = run.figures["end_of_day"]
    assert end_of_day == {
        "listings_compared": 2,
        "mismatched": 1,
        "match_rate": 0.5,
        "within_one_percent": False,
    }
    during_day = run.figures["during_day"]
    assert during_day["compared"] >= 3  # two at setup, one after the order
    replay = run.figures["replay"]
    assert replay["would_have_oversold"] is True and replay["orders_elsewhere"] == 1
    (exposure,) = replay["exposed_orders"]
    assert exposure["order"] == "ORDER-77" and exposure["from"] == "amazon-eu"
    assert (exposure["channel_showed"], exposure["available_after"]) == (10, 2)
    assert (exposure["exposed_units"], exposure["would_have_pushed"]) == (8, 2)
    assert sim.writes() == []


def test_a_matching_shadow_channel_passes_the_one_percent_rule(make_sim_channel):
    sim = make_sim_channel(items=3, mode=Channel.Mode.SHADOW)
    for listing in sim.listings:
        sim.set_on_channel(listing, 10)
    day = timezone.localdate()

    run = shadow.compare_shadow_channel(channel_id=sim.channel.pk, day=day)

    assert run is not None
    assert run.figures["end_of_day"]["within_one_percent"] is True
    assert run.figures["replay"]["would_have_oversold"] is False
    # Once a day: a second call returns the day's comparison.
    assert shadow.compare_shadow_channel(channel_id=sim.channel.pk, day=day) == run
    assert sim.writes() == []


def test_active_channels_get_no_shadow_comparison(make_sim_channel):
    sim = make_sim_channel(items=1)
    assert (
        shadow.compare_shadow_channel(channel_id=sim.channel.pk, day=timezone.localdate()) is None
    )


def test_the_command_reports_each_shadow_channel(make_sim_channel, capsys):
    from django.core.management import call_command

    sim = make_sim_channel(items=1, mode=Channel.Mode.SHADOW)
    sim.set_on_channel(sim.listings[0], 10)
    call_command("reconcile", "shadow")
    out = capsys.readouterr().out
    assert f"{sim.channel.slug} {timezone.localdate()}: match rate 1.0, within 1%: True" in out
