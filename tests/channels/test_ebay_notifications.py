"""eBay's Notification API (JSON, ECDSA-signed) against the simulator over HTTP: verified
with the key of its ``kid``, stored once across retries, the endpoint challenge answered,
forgeries refused; and XML that would expand entities refused without growing memory."""

from __future__ import annotations

import base64
import json
import tracemalloc

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from channels.connectors.ebay import webhooks
from channels.models import WebhookReceipt
from channels.pipeline import ingest, receive
from tests import factories
from tests.channels.connectors.drivers import EbayDriver, OpenChannel
from tests.channels.ebay_simulator import EbaySimulatorClient

VERIFICATION_TOKEN = "a-verification-token-of-thirty-two-characters-or-more"


def _leave_for_later(receipt_id: int, countdown: float = 0.0) -> None:
    """A receipt to retry stays stored (none is expected here)."""


def _open(simulator: EbaySimulatorClient, receiver_url: str = "") -> OpenChannel:
    location = factories.make_location()
    sku = factories.make_sku()
    opened = EbayDriver(simulator).open_channel(
        skus=[sku], location=location, receiver_url=receiver_url
    )
    simulator.update_seller(
        opened.tenant,
        notification_url=opened.webhook_url or "http://127.0.0.1:9/",
        verification_token=VERIFICATION_TOKEN,
    )
    opened.channel.credentials = {
        **opened.channel.credentials,
        "verification_token": VERIFICATION_TOKEN,
    }
    opened.channel.save(update_fields=["credentials"])
    receive.forget_cached_channels()
    return opened


def _application_token(simulator: EbaySimulatorClient, tenant: str) -> str:
    response = requests.post(
        f"{simulator.seller_url(tenant)}/identity/v1/oauth2/token",
        auth=(f"app-{tenant}", f"cert-{tenant}"),
        data={"grant_type": "client_credentials", "scope": "https://api.ebay.com/oauth/api_scope"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _verify_as_documented(simulator: EbaySimulatorClient, tenant: str, delivery: dict) -> bool:
    """Verification written from eBay's documentation (EB3/EB4), apart from the connector:
    decode the header, fetch the key of its ``kid``, check the ECDSA signature over the
    raw body with the key's digest."""
    header = json.loads(base64.b64decode(delivery["headers"]["X-EBAY-SIGNATURE"]))
    assert header["alg"] == "ecdsa"
    answer = requests.get(
        f"{simulator.seller_url(tenant)}/commerce/notification/v1/public_key/{header['kid']}",
        headers={"Authorization": f"Bearer {_application_token(simulator, tenant)}"},
        timeout=10,
    ).json()
    body = "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n".format(
        answer["key"]
        .removeprefix("-----BEGIN PUBLIC KEY-----")
        .removesuffix("-----END PUBLIC KEY-----")
    )
    key = load_pem_public_key(body.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey) and answer["digest"] == "SHA256"
    try:
        key.verify(
            base64.b64decode(header["signature"]),
            delivery["body"].encode(),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        return False
    return True


@pytest.mark.django_db
def test_the_simulators_notifications_verify_as_ebay_documents_it(ebay_simulator):
    """An ECDSA check written from eBay's documentation accepts what the simulator signs,
    and refuses the same body changed by one character."""
    opened = _open(ebay_simulator)
    ebay_simulator.send_notification(
        opened.tenant, "ITEM_MARKED_SHIPPED", {"orderId": "1-2"}, deliver=False
    )
    [delivery] = ebay_simulator.webhooks(opened.tenant)
    assert _verify_as_documented(ebay_simulator, opened.tenant, delivery)
    tampered = {**delivery, "body": delivery["body"].replace('"1-2"', '"1-3"')}
    assert not _verify_as_documented(ebay_simulator, opened.tenant, tampered)


@pytest.mark.django_db(transaction=True)
def test_a_notification_is_verified_stored_once_across_its_attempts_and_acknowledged(
    ebay_simulator, live_server
):
    """Three attempts of one notification (``publishAttemptCount`` 1, 2, 3: three bodies,
    each signed) are all answered 2xx and stored once; its key is fetched once."""
    opened = _open(ebay_simulator, live_server.url)
    sent = ebay_simulator.send_notification(
        opened.tenant, "MARKETPLACE_ACCOUNT_DELETION", {"userId": "u1"}, duplicates=2
    )
    assert sent["status"] == 200
    [delivery] = ebay_simulator.webhooks(opened.tenant)
    assert [a["status"] for a in delivery["attempts"]] == [200, 200, 200]
    assert json.loads(delivery["body"])["notification"]["publishAttemptCount"] == 3
    [receipt] = WebhookReceipt.objects.filter(channel=opened.channel)
    assert receipt.dedupe_key == f"notification:{sent['notification_id']}"
    assert receipt.topic == "MARKETPLACE_ACCOUNT_DELETION"
    ingest.process_new_receipts(retry=_leave_for_later)
    receipt.refresh_from_db()
    assert receipt.status == WebhookReceipt.Status.IGNORED, receipt.error
    key_fetches = [
        r
        for r in ebay_simulator.requests(opened.tenant)
        if "/public_key/" in str(r.get("api_path"))
    ]
    assert len(key_fetches) == 1


@pytest.mark.django_db(transaction=True)
def test_a_bad_signature_an_unknown_key_or_a_malformed_header_is_refused(
    ebay_simulator, live_server
):
    """Nothing is stored for a body changed after signing, a ``kid`` eBay never issued, or a
    header naming another algorithm: each is answered 401."""
    opened = _open(ebay_simulator, live_server.url)
    ebay_simulator.send_notification(
        opened.tenant, "ITEM_MARKED_SHIPPED", {"orderId": "7-7"}, deliver=False
    )
    [delivery] = ebay_simulator.webhooks(opened.tenant)
    signature = delivery["headers"]["X-EBAY-SIGNATURE"]
    decoded = json.loads(base64.b64decode(signature))

    def header(**changes: str) -> str:
        return base64.b64encode(json.dumps({**decoded, **changes}).encode()).decode()

    attempts = [
        (delivery["body"].replace('"7-7"', '"7-8"'), signature),
        (delivery["body"], header(kid="0" * 32)),
        (delivery["body"], header(alg="rsa")),
        (delivery["body"], "not base64 at all!"),
    ]
    for body, signature_header in attempts:
        response = requests.post(
            opened.webhook_url,
            data=body.encode(),
            headers={"Content-Type": "application/json", "X-EBAY-SIGNATURE": signature_header},
            timeout=10,
        )
        assert response.status_code == 401, (signature_header, response.text)
    assert not WebhookReceipt.objects.filter(channel=opened.channel).exists()


@pytest.mark.django_db(transaction=True)
def test_the_endpoint_answers_ebays_challenge_with_the_channels_verification_token(
    ebay_simulator, live_server
):
    """eBay's GET ``?challenge_code=`` is answered with the hash it expects; a channel with
    another token fails the validation, and a GET without a code is refused."""
    opened = _open(ebay_simulator, live_server.url)
    assert ebay_simulator.validate_endpoint(opened.tenant)["validated"] is True
    opened.channel.credentials = {**opened.channel.credentials, "verification_token": "x" * 40}
    opened.channel.save(update_fields=["credentials"])
    receive.forget_cached_channels()
    assert ebay_simulator.validate_endpoint(opened.tenant)["validated"] is False
    assert requests.get(opened.webhook_url, timeout=10).status_code == 405


def test_an_entity_expansion_bomb_is_refused_without_growing_memory():
    """The billion laughs (a kilobyte that would expand to gigabytes) is refused while the
    parser's memory stays under a megabyte."""
    entities = "".join(
        f'<!ENTITY e{n} "{"".join(f"&e{n - 1};" for _ in range(10))}">' for n in range(1, 10)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e0 "lol">{entities}]><x>&e9;</x>'
    tracemalloc.start()
    try:
        for encoding in ("utf-8", "utf-16"):
            body = bomb.replace('"1.0"', f'"1.0" encoding="{encoding}"').encode(encoding)
            with pytest.raises(webhooks.WebhookParseError):
                webhooks.parse_xml(body)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1_000_000
