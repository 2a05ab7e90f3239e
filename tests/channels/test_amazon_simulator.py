"""The Amazon simulator answers as SP-API documents: ``python-amazon-sp-api``, the widely
used client, works against it unchanged but for where it connects."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from sp_api.api import FeedsV20210630, Inventories, ListingsItemsV20210801
from sp_api.auth import AccessTokenClient
from sp_api.base import SellingApiException

MARKETPLACE = "ATVPDKIKX0DER"


def _clients(
    amazon_simulator, seller: str
) -> tuple[ListingsItemsV20210801, FeedsV20210630, Inventories]:
    """The library's clients, pointed at the simulator instead of Amazon's hosts."""
    host = amazon_simulator.url.removeprefix("http://")

    class SimulatorTokenClient(AccessTokenClient):
        scheme = "http://"

    SimulatorTokenClient.host = host
    credentials = {
        "refresh_token": f"Atzr|{seller}",
        "lwa_app_id": f"amzn1.application-oa2-client.{seller}",
        "lwa_client_secret": f"secret-{seller}",
    }
    clients = (
        ListingsItemsV20210801(
            credentials=credentials, auth_token_client_class=SimulatorTokenClient
        ),
        FeedsV20210630(credentials=credentials, auth_token_client_class=SimulatorTokenClient),
        Inventories(credentials=credentials, auth_token_client_class=SimulatorTokenClient),
    )
    for client in clients:
        client.endpoint = amazon_simulator.url
    return clients


def _seller(amazon_simulator) -> str:
    seller = f"SPAPI{uuid.uuid4().hex[:10].upper()}"
    amazon_simulator.create_seller(
        seller,
        document_base_url=amazon_simulator.url,
        patch_apply_delay_s=3600,
        feed_queue_s=3600,
        feed_processing_s=3600,
        listings=[
            {"sku": "SKU-1", "quantity": 4, "fba": {"fulfillable": 50, "inbound_shipped": 5}},
            {"sku": "SKU-2", "quantity": 0},
        ],
    )
    return seller


def test_the_sp_api_client_patches_a_listing_and_reads_it_back(amazon_simulator):
    """Token, a merge patch ACCEPTED (not applied yet), then applied and read back with its
    fulfillmentAvailability; an unknown SKU is a 404 with Amazon's error list."""
    seller = _seller(amazon_simulator)
    listings, _, _ = _clients(amazon_simulator, seller)
    patched = listings.patch_listings_item(
        seller,
        "SKU-1",
        marketplaceIds=[MARKETPLACE],
        body={
            "productType": "PRODUCT",
            "patches": [
                {
                    "op": "merge",
                    "path": "/attributes/fulfillment_availability",
                    "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 20}],
                }
            ],
        },
    )
    assert patched.payload["status"] == "ACCEPTED" and patched.payload["submissionId"]
    included = "summaries,issues,fulfillmentAvailability"
    before = listings.get_listings_item(
        seller, "SKU-1", marketplaceIds=[MARKETPLACE], includedData=included
    )
    assert before.payload["fulfillmentAvailability"][0] == {
        "fulfillmentChannelCode": "DEFAULT",
        "quantity": 4,
    }
    amazon_simulator.process(seller)
    after = listings.get_listings_item(
        seller, "SKU-1", marketplaceIds=[MARKETPLACE], includedData=included
    )
    assert after.payload["fulfillmentAvailability"][0]["quantity"] == 20
    assert after.payload["issues"] == []
    with pytest.raises(SellingApiException) as missing:
        listings.get_listings_item(seller, "NOPE", marketplaceIds=[MARKETPLACE])
    assert missing.value.code == 404
    assert missing.value.error[0]["code"] == "NotFound"


def test_the_sp_api_client_submits_a_feed_and_reads_its_report(amazon_simulator):
    """createFeedDocument, upload to the simulator's own URL, createFeed; IN_QUEUE until
    processed, then DONE with a report naming the message Amazon refused."""
    seller = _seller(amazon_simulator)
    _, feeds, _ = _clients(amazon_simulator, seller)
    document = {
        "header": {"sellerId": seller, "version": "2.0", "issueLocale": "en_US"},
        "messages": [
            {
                "messageId": number,
                "sku": sku,
                "operationType": "PATCH",
                "productType": "PRODUCT",
                "patches": [
                    {
                        "op": "replace",
                        "path": "/attributes/fulfillment_availability",
                        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}],
                    }
                ],
            }
            for number, sku in ((1, "SKU-2"), (2, "UNKNOWN"))
        ],
    }
    _, created = feeds.submit_feed(
        "JSON_LISTINGS_FEED",
        io.BytesIO(json.dumps(document).encode()),
        content_type="application/json",
    )
    feed_id = created.payload["feedId"]
    assert feeds.get_feed(feed_id).payload["processingStatus"] == "IN_QUEUE"
    amazon_simulator.process(seller)
    feed = feeds.get_feed(feed_id).payload
    assert feed["processingStatus"] == "DONE"
    report = json.loads(feeds.get_feed_result_document(feed["resultFeedDocumentId"]))
    assert report["summary"]["messagesAccepted"] == 1
    assert [(issue["messageId"], issue["severity"]) for issue in report["issues"]] == [
        (2, "ERROR")
    ]
    assert amazon_simulator.listings(seller)["SKU-2"]["quantity"] == 7

    _, legacy = feeds.submit_feed(
        "POST_INVENTORY_AVAILABILITY_DATA", io.BytesIO(b"<xml/>"), content_type="text/xml"
    )
    amazon_simulator.process(seller)
    assert feeds.get_feed(legacy.payload["feedId"]).payload["processingStatus"] == "FATAL"


def test_the_sp_api_client_reads_fba_summaries_with_details_and_pages(amazon_simulator):
    """getInventorySummaries with details: the sub-states; one summary per page follows
    nextToken; the third call in a burst of two is throttled with QuotaExceeded."""
    seller = _seller(amazon_simulator)
    amazon_simulator.update_seller(seller, summaries_page_size=1, rate_scale=1000)
    _, _, inventories = _clients(amazon_simulator, seller)
    first = inventories.get_inventory_summary_marketplace(details=True)
    [summary] = first.payload["inventorySummaries"]
    assert summary["sellerSku"] == "SKU-1"
    assert summary["inventoryDetails"]["fulfillableQuantity"] == 50
    assert summary["inventoryDetails"]["inboundShippedQuantity"] == 5
    assert summary["totalQuantity"] == 55
    token = first.pagination["nextToken"]
    second = inventories.get_inventory_summary_marketplace(details=True, nextToken=token)
    assert [s["sellerSku"] for s in second.payload["inventorySummaries"]] == ["SKU-2"]
    assert not (second.pagination or {}).get("nextToken")

    amazon_simulator.update_seller(seller, rate_scale=0.0001)
    with pytest.raises(SellingApiException) as throttled:
        for _ in range(3):
            inventories.get_inventory_summary_marketplace()
    assert throttled.value.code == 429
    assert throttled.value.error[0]["code"] == "QuotaExceeded"
