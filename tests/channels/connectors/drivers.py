"""Platform drivers for the connector contract suite: one per registered connector.

A driver opens a channel on its platform's simulator (a tenant, its items, the Channel
row and its listings), reads what the simulator holds, injects the simulator's faults and
places orders there. The contract tests speak only to drivers, so a platform joins the
suite by adding its driver to ``DRIVERS``.
"""

from __future__ import annotations

import abc
import datetime as dt
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.urls import reverse

from channels.connectors.ebay import connector as ebay_connector
from channels.models import Channel, Listing
from channels.pipeline import ratelimit, receive
from inventory.models import Location, Sku
from tests import factories
from tests.channels.amazon_simulator import AmazonSimulatorClient, SqsServer
from tests.channels.conftest import ShopifySimulatorClient
from tests.channels.ebay_simulator import EbaySimulatorClient
from tests.channels.tiktok_simulator import TikTokSimulatorClient
from tests.channels.walmart_simulator import WalmartSimulatorClient

_tenants = itertools.count(1)


@dataclass
class OpenChannel:
    channel: Channel
    location: Location
    listings: list[Listing]
    tenant: str
    webhook_url: str


def webhook_url_for(receiver_url: str, *, platform: str, slug: str) -> str:
    """The channel's webhook URL on a running nventory ("" when none runs)."""
    if not receiver_url:
        return ""
    path = reverse(
        "channels_webhooks:receive", kwargs={"platform": platform, "channel_slug": slug}
    )
    return f"{receiver_url}{path}"


class PlatformDriver(abc.ABC):
    platform: str
    # The simulator's control client (every one offers the harness's ``faults`` call).
    simulator: Any
    # The fault endpoint of the platform's quantity writes (None: every endpoint).
    write_endpoint: str | None = "write"
    # What the webhook URL answers a forged delivery (404: the platform has no webhook URL).
    forged_delivery_status = 401
    # Whether the simulator can cancel some units of an order while the rest still ships.
    cancels_some_units = False

    @abc.abstractmethod
    def open_channel(
        self, *, skus: Sequence[Sku], location: Location, receiver_url: str = ""
    ) -> OpenChannel:
        """A tenant on the simulator holding one item per SKU (at 0), the channel bound to it
        (active, selling from ``location``) and one listing per SKU; with ``receiver_url``
        (a running nventory), the platform sends the channel's webhooks there."""

    @abc.abstractmethod
    def quantity_on_channel(self, opened: OpenChannel, listing: Listing) -> int | None:
        """What the simulator itself holds for the listing's item (its control API)."""

    @abc.abstractmethod
    def writes_applied(self, opened: OpenChannel, listing: Listing) -> int:
        """How many writes the simulator applied to the listing's item."""

    def fail_next_call(self, opened: OpenChannel, *, status: int = 503) -> None:
        self._write_faults(opened, fail_next=1, fail_status=status)

    def throttle_next_call(self, opened: OpenChannel) -> None:
        self._write_faults(opened, throttle_next=1)

    def time_out_next_call_after_applying(self, opened: OpenChannel) -> None:
        """The next write is applied, and answered only after the client gave up (every
        driver's channel reads with a 0.5 s timeout)."""
        self._write_faults(opened, timeout_next=1, timeout_s=1.5)

    def _write_faults(self, opened: OpenChannel, **faults: Any) -> None:
        """Faults of the simulator's write endpoint (the harness's ``/_sim/`` faults call)."""
        endpoint = {"endpoint": self.write_endpoint} if self.write_endpoint else {}
        self.simulator.faults(opened.tenant, **endpoint, **faults)

    @abc.abstractmethod
    def add_listing_the_platform_lacks(self, opened: OpenChannel, sku: Sku) -> Listing: ...

    @abc.abstractmethod
    def place_order(
        self, opened: OpenChannel, listing: Listing, quantity: int, *, duplicates: int = 0
    ) -> str:
        """An order on the platform, delivered to the channel's webhook URL (with
        ``duplicates`` extra deliveries); the order's reference as the ledger keeps it."""

    def cancel_some_units(
        self,
        opened: OpenChannel,
        order_reference: str,
        listing: Listing,
        quantity: int,
        *,
        duplicates: int = 0,
    ) -> None:
        """``cancels_some_units``: cancel that many units of the listing in the order (not
        yet shipped), announced to the channel (with ``duplicates`` extra deliveries)."""
        raise NotImplementedError(f"{self.platform} cannot cancel part of an order.")

    def bring_events_in(self, opened: OpenChannel) -> None:
        """Store what the platform sent about the channel since the last call: nothing to do
        for HTTP webhooks (they reach the receiver themselves); a queue is pulled."""
        return None

    def settle_submissions_on_the_platform(self, opened: OpenChannel) -> None:
        """ASYNC_WRITES: let the platform apply what it accepted."""
        raise NotImplementedError(f"{self.platform} has no asynchronous writes.")

    @abc.abstractmethod
    def deliver_forged(self, opened: OpenChannel) -> int:
        """Send the webhook URL a delivery signed with the wrong secret; the HTTP status."""

    def use_up_the_days_writes(self, opened: OpenChannel) -> bool:
        """Make the platform refuse more writes of the channel's listings until its next day;
        False for a platform with no daily limit of writes."""
        return False

    def start_the_next_day(self, opened: OpenChannel, monkeypatch: pytest.MonkeyPatch) -> None:
        """Move the platform, and the connector's idea of the day, to the next day."""
        raise NotImplementedError(f"{self.platform} has no daily limit of writes.")

    def back_to_today(self) -> None:
        """Undo ``start_the_next_day`` on the platform, whose clock every later test shares
        (the connector's is undone with its monkeypatch)."""
        raise NotImplementedError(f"{self.platform} has no daily limit of writes.")


class ShopifyDriver(PlatformDriver):
    platform = Channel.Platform.SHOPIFY
    # Shopify's faults apply to every call: its writes and reads share the GraphQL endpoint.
    write_endpoint = None

    cancels_some_units = True

    def __init__(self, simulator: ShopifySimulatorClient) -> None:
        self.simulator = simulator
        # Each order's line item ids (a refund names them), by order reference.
        self.line_item_ids: dict[str, list[int]] = {}

    def open_channel(
        self, *, skus: Sequence[Sku], location: Location, receiver_url: str = ""
    ) -> OpenChannel:
        tenant = f"contract-{next(_tenants)}-{time.monotonic_ns()}"
        webhook_url = webhook_url_for(receiver_url, platform=self.platform, slug=tenant)
        secret = f"whsec-{tenant}"
        self.simulator.create_shop(
            tenant,
            location_id=1,
            webhook_url=webhook_url or "http://127.0.0.1:9/",
            webhook_secret=secret,
            webhook_retry_base_s=0.05,
        )
        item_ids = [5000 + index for index in range(len(skus))]
        self.simulator.add_items(
            tenant,
            [
                {"inventory_item_id": item, "variant_id": item + 1000, "sku": sku.code}
                for item, sku in zip(item_ids, skus, strict=True)
            ],
        )
        channel = factories.make_channel(
            locations=[location],
            slug=tenant,
            mode=Channel.Mode.ACTIVE,
            api_base_url=self.simulator.shop_url(tenant),
            credentials={"access_token": f"shpat_{tenant}"},
            webhook_secret=secret,
            rate_limit_per_s=1000,
            platform_settings={"location_id": 1, "retry_base_s": 0.01, "timeout_s": 0.5},
        )
        ratelimit.reset(channel_id=channel.pk)
        listings = [
            factories.make_listing(
                channel=channel,
                sku=sku,
                external_id=str(item),
                external_sku=sku.code,
                extra_identifiers={"variant_id": str(item + 1000)},
            )
            for item, sku in zip(item_ids, skus, strict=True)
        ]
        return OpenChannel(
            channel=channel,
            location=location,
            listings=listings,
            tenant=tenant,
            webhook_url=webhook_url,
        )

    def quantity_on_channel(self, opened: OpenChannel, listing: Listing) -> int | None:
        item = self.simulator.items(opened.tenant).get(int(listing.external_id))
        return None if item is None else int(item["available"])

    def writes_applied(self, opened: OpenChannel, listing: Listing) -> int:
        item_id = int(listing.external_id)
        return sum(
            1
            for change in self.simulator.changes(opened.tenant)
            if change["inventory_item_id"] == item_id and change["source"] == "api"
        )

    def add_listing_the_platform_lacks(self, opened: OpenChannel, sku: Sku) -> Listing:
        return factories.make_listing(
            channel=opened.channel,
            sku=sku,
            # Ids the shop never issued, one pair per SKU.
            external_id=str(9_000_000 + sku.pk),
            extra_identifiers={"variant_id": str(19_000_000 + sku.pk)},
        )

    def place_order(
        self, opened: OpenChannel, listing: Listing, quantity: int, *, duplicates: int = 0
    ) -> str:
        variant_id = int(str(listing.extra_identifiers["variant_id"]))
        answer = self.simulator.place_order(
            opened.tenant,
            [{"variant_id": variant_id, "quantity": quantity}],
            duplicates=duplicates,
        )
        self.line_item_ids[str(answer["order_id"])] = list(answer["line_item_ids"])
        return str(answer["order_id"])

    def cancel_some_units(
        self,
        opened: OpenChannel,
        order_reference: str,
        listing: Listing,
        quantity: int,
        *,
        duplicates: int = 0,
    ) -> None:
        # A refund restocked as "cancel": units that never shipped (refunds/create).
        [line_item_id] = self.line_item_ids[order_reference]
        self.simulator.refund(
            opened.tenant,
            int(order_reference),
            [{"line_item_id": line_item_id, "quantity": quantity, "restock_type": "cancel"}],
            duplicates=duplicates,
        )

    def deliver_forged(self, opened: OpenChannel) -> int:
        response = requests.post(
            opened.webhook_url,
            data=b'{"id": 1, "line_items": []}',
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Webhook-Id": "forged-1",
                "X-Shopify-Hmac-Sha256": "bm90IHRoZSBzaWduYXR1cmU=",
            },
            timeout=10,
        )
        return response.status_code


class WalmartDriver(PlatformDriver):
    """Walmart: batches of more than two items go as inventory feeds, which the simulator
    processes as it accepts them (the pipeline still waits for ``settle_submissions``);
    one or two items go as one PUT per SKU."""

    platform = Channel.Platform.WALMART
    feed_threshold = 2

    def __init__(self, simulator: WalmartSimulatorClient) -> None:
        self.simulator = simulator

    def open_channel(
        self, *, skus: Sequence[Sku], location: Location, receiver_url: str = ""
    ) -> OpenChannel:
        tenant = f"contract-{next(_tenants)}-{time.monotonic_ns()}"
        webhook_url = webhook_url_for(receiver_url, platform=self.platform, slug=tenant)
        secret = f"whsec-{tenant}"
        self.simulator.create_seller(
            tenant,
            client_id=f"cid-{tenant}",
            client_secret=f"secret-{tenant}",
            webhook_url=webhook_url or "http://127.0.0.1:9/",
            webhook_secret=secret,
            webhook_retry_base_s=0.05,
            feed_processing_s=0,
        )
        self.simulator.add_items(tenant, [{"sku": sku.code, "quantity": 0} for sku in skus])
        channel = factories.make_channel(
            locations=[location],
            slug=tenant,
            platform=self.platform,
            mode=Channel.Mode.ACTIVE,
            api_base_url=self.simulator.seller_url(tenant),
            credentials={"client_id": f"cid-{tenant}", "client_secret": f"secret-{tenant}"},
            webhook_secret=secret,
            rate_limit_per_s=1000,
            platform_settings={
                "feed_threshold": self.feed_threshold,
                "retry_base_s": 0.01,
                "timeout_s": 0.5,
            },
        )
        ratelimit.reset(channel_id=channel.pk)
        listings = [
            factories.make_listing(
                channel=channel, sku=sku, external_id=sku.code, external_sku=sku.code
            )
            for sku in skus
        ]
        return OpenChannel(
            channel=channel,
            location=location,
            listings=listings,
            tenant=tenant,
            webhook_url=webhook_url,
        )

    def quantity_on_channel(self, opened: OpenChannel, listing: Listing) -> int | None:
        item = self.simulator.items(opened.tenant).get(listing.external_id)
        return None if item is None else int(item["availToSellQty"])

    def writes_applied(self, opened: OpenChannel, listing: Listing) -> int:
        return int(self.simulator.items(opened.tenant)[listing.external_id]["api_writes"])

    def add_listing_the_platform_lacks(self, opened: OpenChannel, sku: Sku) -> Listing:
        # A feed refuses an unknown SKU only once processed (settle_submissions; see
        # test_walmart_connector); the contract wants the refusal at once, which the PUT
        # gives: the batch goes as PUTs.
        opened.channel.platform_settings = {
            **opened.channel.platform_settings,
            "feed_threshold": 100,
        }
        opened.channel.save(update_fields=["platform_settings"])
        return factories.make_listing(
            channel=opened.channel, sku=sku, external_id=f"NOT-ON-WALMART-{sku.code}"
        )

    def place_order(
        self, opened: OpenChannel, listing: Listing, quantity: int, *, duplicates: int = 0
    ) -> str:
        answer = self.simulator.place_order(
            opened.tenant,
            [{"sku": listing.external_id, "quantity": quantity}],
            duplicates=duplicates,
        )
        return str(answer["purchase_order_id"])

    def settle_submissions_on_the_platform(self, opened: OpenChannel) -> None:
        self.simulator.process_feeds(opened.tenant)

    def deliver_forged(self, opened: OpenChannel) -> int:
        response = requests.post(
            opened.webhook_url,
            data=b'{"source": {"eventType": "PO_CREATED", "eventId": "forged-1"}, '
            b'"payload": {"purchaseOrderId": "1", "orderLines": []}}',
            headers={
                "Content-Type": "application/json",
                "X-Walmart-Signature": "0" * 64,
            },
            timeout=10,
        )
        return response.status_code


class AmazonDriver(PlatformDriver):
    """A seller on the Amazon simulator, its notifications on a moto SQS queue.

    Patches apply only when the driver lets them (``patch_apply_delay_s`` is far beyond any
    test): what the simulator holds is read once what it accepted has been processed.
    """

    platform = Channel.Platform.AMAZON
    write_endpoint = "patchListingsItem"
    forged_delivery_status = 404

    def __init__(self, simulator: AmazonSimulatorClient, sqs: SqsServer) -> None:
        self.simulator = simulator
        self.sqs = sqs
        self.queues: dict[str, str] = {}

    def open_channel(
        self, *, skus: Sequence[Sku], location: Location, receiver_url: str = ""
    ) -> OpenChannel:
        tenant = f"A{next(_tenants)}{time.monotonic_ns()}"
        queue_url = self.sqs.create_queue(f"nventory-{tenant}")
        self.queues[tenant] = queue_url
        self.simulator.create_seller(
            tenant,
            patch_apply_delay_s=3600,
            sqs_queue_url=queue_url,
            sqs_endpoint_url=self.sqs.url,
        )
        self.simulator.add_listings(tenant, [{"sku": sku.code} for sku in skus])
        channel = factories.make_channel(
            locations=[location],
            slug=tenant.lower(),
            platform=self.platform,
            mode=Channel.Mode.ACTIVE,
            api_base_url=self.simulator.url,
            credentials={
                "client_id": f"amzn1.application-oa2-client.{tenant}",
                "client_secret": f"secret-{tenant}",
                "refresh_token": f"Atzr|{tenant}",
                "aws_access_key_id": self.sqs.access_key,
                "aws_secret_access_key": self.sqs.secret_key,
            },
            rate_limit_per_s=1000,
            platform_settings={
                "seller_id": tenant,
                "token_url": self.simulator.token_url,
                "timeout_s": 0.5,
                "throttle_backoff_s": 0.01,
                "retry_base_s": 0.01,
                "sqs_queue_url": queue_url,
                "sqs_endpoint_url": self.sqs.url,
                "sqs_wait_s": 0,
            },
        )
        ratelimit.reset(channel_id=channel.pk)
        listings = [
            factories.make_listing(
                channel=channel, sku=sku, external_id=sku.code, external_sku=sku.code
            )
            for sku in skus
        ]
        return OpenChannel(
            channel=channel,
            location=location,
            listings=listings,
            tenant=tenant,
            webhook_url=webhook_url_for(receiver_url, platform=self.platform, slug=channel.slug),
        )

    def quantity_on_channel(self, opened: OpenChannel, listing: Listing) -> int | None:
        self.simulator.process(opened.tenant)
        found = self.simulator.listings(opened.tenant).get(listing.external_id)
        return None if found is None else int(found["quantity"])

    def writes_applied(self, opened: OpenChannel, listing: Listing) -> int:
        self.simulator.process(opened.tenant)
        return sum(
            1
            for change in self.simulator.changes(opened.tenant)
            if change["sku"] == listing.external_id and change["source"] in ("patch", "feed")
        )

    def add_listing_the_platform_lacks(self, opened: OpenChannel, sku: Sku) -> Listing:
        return factories.make_listing(
            channel=opened.channel, sku=sku, external_id=f"NOT-ON-AMAZON-{sku.code}"
        )

    def place_order(
        self, opened: OpenChannel, listing: Listing, quantity: int, *, duplicates: int = 0
    ) -> str:
        queue_url = self.queues[opened.tenant]
        before = self.sqs.waiting(queue_url)
        answer = self.simulator.place_order(
            opened.tenant,
            [{"sku": listing.external_id, "quantity": quantity}],
            duplicates=duplicates,
        )
        # The simulator sends from its own threads: wait until every copy is on the queue.
        deadline = time.monotonic() + 10
        while self.sqs.waiting(queue_url) < before + 1 + duplicates:
            assert time.monotonic() < deadline, "the ORDER_CHANGE never reached the queue"
            time.sleep(0.02)
        return str(answer["order_id"])

    def bring_events_in(self, opened: OpenChannel) -> None:
        receive.pull_notifications(channel_id=opened.channel.pk)

    def settle_submissions_on_the_platform(self, opened: OpenChannel) -> None:
        self.simulator.process(opened.tenant)

    def deliver_forged(self, opened: OpenChannel) -> int:
        response = requests.post(
            opened.webhook_url,
            data=b'{"NotificationType": "ORDER_CHANGE"}',
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        return response.status_code


class EbayDriver(PlatformDriver):
    """A seller on the eBay simulator: one published offer per item, orders announced as
    signed ``FixedPriceTransaction`` Platform Notifications."""

    platform = Channel.Platform.EBAY

    def __init__(self, simulator: EbaySimulatorClient) -> None:
        self.simulator = simulator

    def open_channel(
        self, *, skus: Sequence[Sku], location: Location, receiver_url: str = ""
    ) -> OpenChannel:
        tenant = f"contract-{next(_tenants)}-{time.monotonic_ns()}"
        webhook_url = webhook_url_for(receiver_url, platform=self.platform, slug=tenant)
        cert_id = f"cert-{tenant}"
        self.simulator.create_seller(
            tenant,
            client_id=f"app-{tenant}",
            client_secret=cert_id,
            refresh_token=f"refresh-{tenant}",
            dev_id=f"dev-{tenant}",
            webhook_url=webhook_url or "http://127.0.0.1:9/",
            webhook_retry_base_s=0.05,
        )
        items = self.simulator.add_items(
            tenant, [{"sku": sku.code, "quantity": 0} for sku in skus]
        )
        channel = factories.make_channel(
            locations=[location],
            slug=tenant,
            platform=self.platform,
            mode=Channel.Mode.ACTIVE,
            api_base_url=self.simulator.seller_url(tenant),
            credentials={
                "client_id": f"app-{tenant}",
                "client_secret": cert_id,
                "refresh_token": f"refresh-{tenant}",
                "dev_id": f"dev-{tenant}",
            },
            webhook_secret=cert_id,
            rate_limit_per_s=1000,
            platform_settings={"retry_base_s": 0.01, "timeout_s": 0.5},
        )
        ratelimit.reset(channel_id=channel.pk)
        listings = [
            factories.make_listing(
                channel=channel,
                sku=sku,
                external_id=sku.code,
                external_sku=sku.code,
                extra_identifiers={"offer_ids": [item["offer_id"]]},
            )
            for sku, item in zip(skus, items, strict=True)
        ]
        return OpenChannel(
            channel=channel,
            location=location,
            listings=listings,
            tenant=tenant,
            webhook_url=webhook_url,
        )

    def quantity_on_channel(self, opened: OpenChannel, listing: Listing) -> int | None:
        item = self.simulator.items(opened.tenant).get(listing.external_id)
        return None if item is None else item["listed"]

    def writes_applied(self, opened: OpenChannel, listing: Listing) -> int:
        return int(self.simulator.items(opened.tenant)[listing.external_id]["api_writes"])

    def add_listing_the_platform_lacks(self, opened: OpenChannel, sku: Sku) -> Listing:
        return factories.make_listing(
            channel=opened.channel,
            sku=sku,
            external_id=f"NOT-ON-EBAY-{sku.code}",
            extra_identifiers={"offer_ids": ["1"]},
        )

    def place_order(
        self, opened: OpenChannel, listing: Listing, quantity: int, *, duplicates: int = 0
    ) -> str:
        answer = self.simulator.place_order(
            opened.tenant,
            [{"sku": listing.external_id, "quantity": quantity}],
            duplicates=duplicates,
        )
        return str(answer["line_item_ids"][0])

    def deliver_forged(self, opened: OpenChannel) -> int:
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>'
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soapenv:Header><RequesterCredentials><NotificationSignature>"
            b"bm90IHRoZSBzaWduYXR1cmU=</NotificationSignature></RequesterCredentials>"
            b"</soapenv:Header><soapenv:Body><GetItemTransactionsResponse>"
            b"<Timestamp>2026-01-01T00:00:00.000Z</Timestamp>"
            b"<NotificationEventName>FixedPriceTransaction</NotificationEventName>"
            b"<Item><ItemID>1</ItemID><SKU>X</SKU></Item><TransactionArray><Transaction>"
            b"<QuantityPurchased>1</QuantityPurchased><TransactionID>1</TransactionID>"
            b"</Transaction></TransactionArray></GetItemTransactionsResponse></soapenv:Body>"
            b"</soapenv:Envelope>"
        )
        response = requests.post(
            opened.webhook_url,
            data=body,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            timeout=10,
        )
        return response.status_code

    def use_up_the_days_writes(self, opened: OpenChannel) -> bool:
        """One revision a day, already spent by the first push (§5.2's cap, made small)."""
        self.simulator.update_seller(opened.tenant, revision_cap=1)
        return True

    def start_the_next_day(self, opened: OpenChannel, monkeypatch: pytest.MonkeyPatch) -> None:
        self.simulator.clock(advance_s=86_400)
        tomorrow = ebay_connector.utc_now() + dt.timedelta(days=1)
        monkeypatch.setattr(ebay_connector, "utc_now", lambda: tomorrow)

    def back_to_today(self) -> None:
        # Left a day ahead, the simulator would sign its notifications for tomorrow, and
        # the next tests' deliveries would be refused as out of their time window. Its
        # clock only moves forward: a reset puts it back (every test opens its own seller).
        self.simulator.reset()


class TikTokDriver(PlatformDriver):
    """TikTok Shop: one SKU per product; order webhooks name the order only, so ingest
    fetches its lines (ORDER_LOOKUP)."""

    platform = Channel.Platform.TIKTOK
    cancels_some_units = True

    def __init__(self, simulator: TikTokSimulatorClient) -> None:
        self.simulator = simulator

    def open_channel(
        self, *, skus: Sequence[Sku], location: Location, receiver_url: str = ""
    ) -> OpenChannel:
        tenant = f"contract-{next(_tenants)}-{time.monotonic_ns()}"
        webhook_url = webhook_url_for(receiver_url, platform=self.platform, slug=tenant)
        shop = self.simulator.create_shop(
            tenant,
            webhook_url=webhook_url or "http://127.0.0.1:9/",
            webhook_retry_base_s=0.05,
        )
        self.simulator.add_skus(
            tenant,
            [{"sku_id": sku.code, "product_id": f"p-{sku.code}", "quantity": 0} for sku in skus],
        )
        channel = factories.make_channel(
            locations=[location],
            slug=tenant,
            platform=self.platform,
            mode=Channel.Mode.ACTIVE,
            api_base_url=self.simulator.url,
            credentials={
                "app_key": f"key-{tenant}",
                "app_secret": f"secret-{tenant}",
                "shop_cipher": shop["shop_cipher"],
                "refresh_token": shop["refresh_token"],
            },
            webhook_secret=f"secret-{tenant}",
            rate_limit_per_s=1000,
            platform_settings={"retry_base_s": 0.01, "timeout_s": 0.5},
        )
        ratelimit.reset(channel_id=channel.pk)
        listings = [
            factories.make_listing(
                channel=channel,
                sku=sku,
                external_id=sku.code,
                external_sku=sku.code,
                extra_identifiers={"product_id": f"p-{sku.code}"},
            )
            for sku in skus
        ]
        return OpenChannel(
            channel=channel,
            location=location,
            listings=listings,
            tenant=tenant,
            webhook_url=webhook_url,
        )

    def quantity_on_channel(self, opened: OpenChannel, listing: Listing) -> int | None:
        sku = self.simulator.skus(opened.tenant).get(listing.external_id)
        return None if sku is None else int(sku["available_quantity"])

    def writes_applied(self, opened: OpenChannel, listing: Listing) -> int:
        return int(self.simulator.skus(opened.tenant)[listing.external_id]["api_writes"])

    def add_listing_the_platform_lacks(self, opened: OpenChannel, sku: Sku) -> Listing:
        # A SKU id the product does not have: refused inside a ``code: 0`` answer (§4.3).
        first = opened.listings[0]
        return factories.make_listing(
            channel=opened.channel,
            sku=sku,
            external_id=f"NOT-ON-TIKTOK-{sku.code}",
            extra_identifiers={"product_id": first.extra_identifiers["product_id"]},
        )

    def place_order(
        self, opened: OpenChannel, listing: Listing, quantity: int, *, duplicates: int = 0
    ) -> str:
        answer = self.simulator.place_order(
            opened.tenant,
            [{"sku_id": listing.external_id, "quantity": quantity}],
            duplicates=duplicates,
        )
        return str(answer["order_id"])

    def cancel_some_units(
        self,
        opened: OpenChannel,
        order_reference: str,
        listing: Listing,
        quantity: int,
        *,
        duplicates: int = 0,
    ) -> None:
        # A partial cancellation granted at once: type 11, its line items searched (§4.1).
        self.simulator.cancel_lines(
            opened.tenant,
            order_reference,
            [{"sku_id": listing.external_id, "quantity": quantity}],
            duplicates=duplicates,
        )

    def deliver_forged(self, opened: OpenChannel) -> int:
        response = requests.post(
            opened.webhook_url,
            data=b'{"type": 1, "tts_notification_id": "forged-1", "shop_id": "1", '
            b'"timestamp": 1, "data": {"order_id": "1", "order_status": "AWAITING_SHIPMENT"}}',
            headers={"Content-Type": "application/json", "Authorization": "0" * 64},
            timeout=10,
        )
        return response.status_code
