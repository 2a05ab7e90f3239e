from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from channels.management.commands import prepare_local
from inventory.models import InventoryEvent, Location, Sku, StockLevel

pytestmark = pytest.mark.django_db


def _run() -> str:
    out = StringIO()
    call_command("prepare_local", stdout=out)
    return out.getvalue()


def test_second_run_changes_nothing(monkeypatch):
    """One operator, one catalog, one set of receipts, however often it runs."""
    monkeypatch.delenv("WEB_ADDR", raising=False)
    users = get_user_model().objects

    first = _run()
    events = InventoryEvent.objects.count()
    levels = list(StockLevel.objects.order_by("pk").values_list("pk", "on_hand"))
    second = _run()

    operator = users.get(username="operator")
    assert operator.is_superuser and operator.is_staff
    assert users.count() == 1
    assert Sku.objects.count() == len(prepare_local.DEMO_SKUS) + len(prepare_local.DEMO_BUNDLES)
    assert set(Location.objects.values_list("kind", flat=True)) == {
        Location.Kind.WAREHOUSE,
        Location.Kind.MARKETPLACE_FULFILLED,
    }
    assert events == sum(len(demo.stock) for demo in prepare_local.DEMO_SKUS) > 0
    assert InventoryEvent.objects.count() == events
    assert list(StockLevel.objects.order_by("pk").values_list("pk", "on_hand")) == levels

    assert "password:" in first
    assert "password:" not in second
    assert "Demo catalog loaded" in first
    assert "already loaded" in second
    assert "Operator account exists (operator)" in second
    for output in (first, second):
        assert "http://127.0.0.1:8000/admin/" in output
        assert "http://127.0.0.1:8000/api/v1/" in output
        assert "http://127.0.0.1:8000/api/docs/" in output


def test_printed_password_logs_the_operator_in(client):
    """The password shown once is the operator's real password."""
    output = _run()
    password = next(
        line.split("password:", 1)[1].strip()
        for line in output.splitlines()
        if "password:" in line
    )

    assert client.login(username="operator", password=password)


def test_demo_stock_matches_the_catalog():
    """Every demo receipt is keyed demo:receipt:<code>:<location> and lands on hand."""
    _run()

    for demo in prepare_local.DEMO_SKUS:
        for location_code, quantity in demo.stock.items():
            event = InventoryEvent.objects.get(
                idempotency_key=f"demo:receipt:{demo.code}:{location_code}"
            )
            assert (event.sku.code, event.location.code, event.delta_on_hand) == (
                demo.code,
                location_code,
                quantity,
            )
    assert Sku.objects.exclude(category="").count() == 8


def test_an_interrupted_first_load_is_completed(monkeypatch):
    """Receipts missing after a crash are recorded by the next run, the rest are kept."""
    calls = 0
    real_receive = prepare_local.inventory_services.receive_stock

    def crash_after_two(**kwargs):
        nonlocal calls
        calls += 1
        if calls > 2:
            raise RuntimeError("killed")
        return real_receive(**kwargs)

    monkeypatch.setattr(prepare_local.inventory_services, "receive_stock", crash_after_two)
    with pytest.raises(RuntimeError):
        _run()
    assert InventoryEvent.objects.count() == 2
    monkeypatch.setattr(prepare_local.inventory_services, "receive_stock", real_receive)

    output = _run()

    expected = sum(len(demo.stock) for demo in prepare_local.DEMO_SKUS)
    assert InventoryEvent.objects.count() == expected
    assert "Demo catalog loaded" in output


def test_an_existing_catalog_is_left_alone():
    """A database that already holds real SKUs gets no demo data."""
    Sku.objects.create(code="REAL-1", name="A real product")

    output = _run()

    assert list(Sku.objects.values_list("code", flat=True)) == ["REAL-1"]
    assert not Location.objects.exists()
    assert "demo catalog not loaded" in output


def test_urls_follow_web_addr(monkeypatch):
    """The printed base URL is the address runserver listens on."""
    monkeypatch.setenv("WEB_ADDR", "0.0.0.0:9000")

    output = _run()

    assert "http://0.0.0.0:9000/admin/" in output
    assert "http://0.0.0.0:9000/api/docs/" in output


def test_demo_shopify_channel_is_wired_to_the_simulator_seed(tmp_path, monkeypatch):
    import json

    from channels.models import Channel, PendingPush

    monkeypatch.setenv("SHOPIFY_SIMULATOR_PORT", "8799")
    seed_file = tmp_path / "shopify-demo.json"
    for _ in range(2):
        call_command("prepare_local", simulator_seed_file=seed_file, stdout=StringIO())

    channel = Channel.objects.get(slug=prepare_local.DEMO_CHANNEL_SLUG)
    assert Channel.objects.filter(platform=Channel.Platform.SHOPIFY).count() == 1
    assert channel.api_base_url == "http://127.0.0.1:8799/shops/demo-store"
    assert channel.listings.count() == len(prepare_local.DEMO_SKUS)
    [shop] = json.loads(seed_file.read_text())["shops"]
    assert shop["webhook_secret"] == channel.webhook_secret
    assert shop["access_token"] == channel.credentials["access_token"]
    assert shop["webhook_url"].endswith("/webhooks/shopify/demo-shopify/")
    assert {item["sku"] for item in shop["items"]} == set(prepare_local.DEMO_SKU_CODES)
    # The simulator starts empty, so every listing is owed its quantity.
    assert PendingPush.objects.filter(channel=channel).count() == channel.listings.count()
    assert oct(seed_file.stat().st_mode & 0o777) == "0o600"


def test_demo_walmart_channel_pushes_to_the_simulator_its_seed_creates(tmp_path):
    """The seed's seller takes the channel's client credentials and holds every listed
    SKU: the channel's connector writes and reads them back."""
    import json

    from channels.connectors.registry import get_connector
    from channels.connectors.types import ListingRef, QuantityUpdate
    from channels.models import Channel
    from channels.simulators.harness import SimulatorServer
    from channels.simulators.walmart import WalmartSimulator

    seed_file = tmp_path / "demo.json"
    for _ in range(2):
        call_command("prepare_local", simulator_seed_file=seed_file, stdout=StringIO())
    channel = Channel.objects.get(slug=prepare_local.DEMO_WALMART_CHANNEL_SLUG)
    assert Channel.objects.filter(platform=Channel.Platform.WALMART).count() == 1
    seed = json.loads(seed_file.read_text())
    assert {"shops", "walmart"} <= set(seed)
    [seller] = seed["walmart"]["sellers"]
    assert seller["webhook_url"].endswith("/webhooks/walmart/demo-walmart/")

    simulator = WalmartSimulator()
    assert simulator.seed(seed["walmart"]) == 1
    server = SimulatorServer(simulator)
    server.start_in_thread()
    try:
        channel.api_base_url = f"{server.url}/sellers/{prepare_local.DEMO_WALMART_SELLER}"
        listing = channel.listings.get(external_id="MUG-CER-350")
        connector = get_connector(channel)
        [result] = connector.push_quantities(
            [QuantityUpdate(listing.pk, listing.external_id, 7, None, "demo-1")]
        )
        assert result.status == "applied"
        assert connector.read_quantities([ListingRef(listing.pk, listing.external_id)]) == {
            listing.pk: 7
        }
    finally:
        server.shutdown()
        server.server_close()


def test_demo_tiktok_channel_pushes_to_the_simulator_its_seed_creates(tmp_path):
    """The seed's shop takes the channel's app key, secret, shop cipher and refresh token
    and holds every listed SKU: the channel's connector signs its calls, writes and reads
    them back."""
    import json

    from channels.connectors.registry import get_connector
    from channels.connectors.tiktok import client as tiktok_client
    from channels.connectors.types import ListingRef, QuantityUpdate
    from channels.models import Channel
    from channels.simulators.harness import SimulatorServer
    from channels.simulators.tiktok import TikTokSimulator

    seed_file = tmp_path / "demo.json"
    for _ in range(2):
        call_command("prepare_local", simulator_seed_file=seed_file, stdout=StringIO())
    channel = Channel.objects.get(slug=prepare_local.DEMO_TIKTOK_CHANNEL_SLUG)
    assert Channel.objects.filter(platform=Channel.Platform.TIKTOK).count() == 1
    seed = json.loads(seed_file.read_text())
    [shop] = seed["tiktok"]["shops"]
    assert shop["webhook_url"].endswith("/webhooks/tiktok/demo-tiktok/")
    assert shop["app_secret"] == channel.webhook_secret

    simulator = TikTokSimulator()
    assert simulator.seed(seed["tiktok"]) == 1
    server = SimulatorServer(simulator)
    server.start_in_thread()
    tiktok_client.forget_tokens()
    try:
        channel.api_base_url = server.url
        listing = channel.listings.get(external_id="MUG-CER-350")
        ref = ListingRef(listing.pk, listing.external_id, listing.extra_identifiers)
        connector = get_connector(channel)
        [result] = connector.push_quantities(
            [
                QuantityUpdate(
                    listing.pk, listing.external_id, 7, None, "demo-1", listing.extra_identifiers
                )
            ]
        )
        assert result.status == "applied"
        assert connector.read_quantities([ref]) == {listing.pk: 7}
    finally:
        server.shutdown()
        server.server_close()


def test_demo_amazon_channel_is_wired_to_the_simulator_seed_and_its_queue(tmp_path, monkeypatch):
    """The Amazon channel is created once; the seller the simulator creates at start holds
    the channel's LWA credentials, a listing per demo SKU and the channel's SQS queue."""
    import json

    from channels.models import Channel

    monkeypatch.setenv("AMAZON_SIMULATOR_PORT", "8798")
    seed_file = tmp_path / "shopify-demo.json"
    for _ in range(2):
        call_command("prepare_local", simulator_seed_file=seed_file, stdout=StringIO())

    channel = Channel.objects.get(platform=Channel.Platform.AMAZON)
    assert channel.api_base_url == "http://127.0.0.1:8798"
    seed = json.loads(seed_file.read_text())
    assert len(seed["shops"]) == 1
    [seller] = seed["amazon"]["sellers"]
    assert seller["refresh_token"] == channel.credentials["refresh_token"]
    assert seller["client_secret"] == channel.credentials["client_secret"]
    assert seller["sqs_queue_url"] == channel.platform_settings["sqs_queue_url"]
    assert {listing["sku"] for listing in seller["listings"]} == set(prepare_local.DEMO_SKU_CODES)


def test_demo_ebay_channel_pushes_to_the_simulator_its_seed_creates(tmp_path):
    """The seed's eBay seller takes the channel's OAuth credentials and holds every listed
    SKU with a published offer: the channel's connector writes and reads them back."""
    import json

    from channels.connectors.registry import get_connector
    from channels.connectors.types import ListingRef, QuantityUpdate
    from channels.models import Channel
    from channels.simulators.ebay import EbaySimulator
    from channels.simulators.harness import SimulatorServer

    seed_file = tmp_path / "demo.json"
    for _ in range(2):
        call_command("prepare_local", simulator_seed_file=seed_file, stdout=StringIO())
    channel = Channel.objects.get(slug=prepare_local.DEMO_EBAY_CHANNEL_SLUG)
    assert Channel.objects.filter(platform=Channel.Platform.EBAY).count() == 1
    seed = json.loads(seed_file.read_text())
    [seller] = seed["ebay"]["sellers"]
    assert seller["webhook_url"].endswith("/webhooks/ebay/demo-ebay/")

    simulator = EbaySimulator()
    assert simulator.seed(seed["ebay"]) == 1
    server = SimulatorServer(simulator)
    server.start_in_thread()
    try:
        channel.api_base_url = f"{server.url}/sellers/{prepare_local.DEMO_EBAY_SELLER}"
        listing = channel.listings.get(external_id="MUG-CER-350")
        connector = get_connector(channel)
        [result] = connector.push_quantities(
            [QuantityUpdate(listing.pk, listing.external_id, 7, None, "demo-1")]
        )
        assert result.status == "applied"
        assert connector.read_quantities([ListingRef(listing.pk, listing.external_id)]) == {
            listing.pk: 7
        }
    finally:
        server.shutdown()
        server.server_close()
