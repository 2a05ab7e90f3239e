"""eBay's Notification API (JSON, signed with ECDSA): signature, endpoint challenge, envelope.

Pure functions over bytes and headers (CHANNEL_APIS.md §5.1, EB3/EB4/EB5), tested without
a channel; ``EbayConnector`` fetches the public keys and delegates the rest here. The
older Platform Notifications (SOAP, order events) are ``channels.connectors.ebay.webhooks``.

A notification carries ``X-EBAY-SIGNATURE``: base64 of a JSON object naming the algorithm
(``ecdsa``), the key id (``kid``), the DER signature (base64) and its digest. The public key
of ``kid`` comes from ``GET /commerce/notification/v1/public_key/{kid}``; the signature is
checked over the raw body as received.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from channels.connectors.types import (
    MessageKind,
    WebhookEnvelope,
    WebhookMessage,
    WebhookParseError,
)

SIGNATURE_HEADER = "x-ebay-signature"
# What eBay names the digests it signs with (the public key's ``digest``).
_DIGESTS: Mapping[str, type[hashes.HashAlgorithm]] = {"SHA1": hashes.SHA1, "SHA256": hashes.SHA256}
MAX_KEY_ID_LENGTH = 128
MAX_HEADER_LENGTH = 4096
MAX_NOTIFICATION_ID_LENGTH = 200
# §5.1: topics this connector knows. None moves stock here: eBay announces orders through
# Platform Notifications and the Fulfillment API, not this API [M]; shipping does not change
# what can be sold, and an account deletion asks only that buyer data be erased, of which
# nventory keeps none. They are verified, stored once and acknowledged.
KNOWN_TOPICS = frozenset(
    {"MARKETPLACE_ACCOUNT_DELETION", "ITEM_MARKED_SHIPPED", "ITEM_AVAILABILITY"}
)


@dataclass(frozen=True)
class SignatureHeader:
    """``X-EBAY-SIGNATURE`` decoded."""

    key_id: str
    signature: bytes
    digest: str


@dataclass(frozen=True)
class PublicKey:
    """A key as ``getPublicKey`` answers it: the PEM and the digest it signs with."""

    pem: str
    digest: str


def is_notification(headers: Mapping[str, str]) -> bool:
    """Whether a delivery claims to be a Notification API one (it carries the header)."""
    return any(name.lower() == SIGNATURE_HEADER for name in headers)


def signature_header(headers: Mapping[str, str]) -> SignatureHeader:
    """The decoded ``X-EBAY-SIGNATURE``; ``WebhookParseError`` when it is malformed."""
    raw = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), "")
    if not raw or len(raw) > MAX_HEADER_LENGTH:
        raise WebhookParseError("X-EBAY-SIGNATURE is missing or too long.")
    try:
        decoded = json.loads(base64.b64decode(raw, validate=True))
        signature = base64.b64decode(str(decoded["signature"]), validate=True)
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise WebhookParseError("X-EBAY-SIGNATURE is not base64 of the JSON eBay sends.") from None
    if not isinstance(decoded, dict) or str(decoded.get("alg", "")).lower() != "ecdsa":
        raise WebhookParseError("X-EBAY-SIGNATURE names another algorithm than ECDSA.")
    key_id = decoded.get("kid")
    if not isinstance(key_id, str) or not key_id or len(key_id) > MAX_KEY_ID_LENGTH:
        raise WebhookParseError("X-EBAY-SIGNATURE has no key id.")
    return SignatureHeader(
        key_id=key_id, signature=signature, digest=str(decoded.get("digest", "")).upper()
    )


def public_key_of(answer: Mapping[str, Any]) -> PublicKey:
    """``getPublicKey``'s answer (EB3): ``{"algorithm", "digest", "key"}``, the key a PEM
    that eBay sends without the line breaks PEM readers need."""
    if str(answer.get("algorithm", "")).upper() != "ECDSA":
        raise WebhookParseError("The public key is not an ECDSA key.")
    key = answer.get("key")
    digest = str(answer.get("digest", "")).upper()
    if not isinstance(key, str) or digest not in _DIGESTS:
        raise WebhookParseError("The public key answer has no key or an unknown digest.")
    return PublicKey(pem=_with_line_breaks(key), digest=digest)


def _with_line_breaks(key: str) -> str:
    begin, end = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    inner = key.replace(begin, "").replace(end, "").replace("\n", "").strip()
    return f"{begin}\n{inner}\n{end}\n"


def signature_matches(*, body: bytes, header: SignatureHeader, key: PublicKey) -> bool:
    """The ECDSA signature over the raw body with the digest the key is published with
    (the header's own digest is not trusted to choose it)."""
    try:
        public_key = load_pem_public_key(key.pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        return False
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return False
    try:
        public_key.verify(header.signature, body, ec.ECDSA(_DIGESTS[key.digest]()))
    except InvalidSignature:
        return False
    return True


def challenge_response(*, challenge_code: str, verification_token: str, endpoint_url: str) -> str:
    """§5.1 (EB5): ``hex(SHA256(challengeCode + verificationToken + endpoint))``, which
    proves to eBay that the endpoint is the subscriber's."""
    digest = hashlib.sha256()
    for part in (challenge_code, verification_token, endpoint_url):
        digest.update(part.encode())
    return digest.hexdigest()


def envelope(body: bytes) -> WebhookEnvelope:
    """``metadata.topic`` and, to deduplicate on, ``notification.notificationId`` (a retry
    keeps it and raises ``publishAttemptCount``)."""
    payload = _object(body)
    metadata, notification = payload.get("metadata"), payload.get("notification")
    if not isinstance(metadata, dict) or not isinstance(notification, dict):
        raise WebhookParseError("A notification has 'metadata' and 'notification' objects.")
    topic, notification_id = metadata.get("topic"), notification.get("notificationId")
    if not isinstance(topic, str) or not topic or len(topic) > 128:
        raise WebhookParseError("metadata.topic is missing.")
    if (
        not isinstance(notification_id, str)
        or not notification_id
        or len(notification_id) > MAX_NOTIFICATION_ID_LENGTH
    ):
        raise WebhookParseError("notification.notificationId is missing.")
    return WebhookEnvelope(topic=topic, dedupe_key=f"notification:{notification_id}")


def parse(topic: str, body: bytes) -> WebhookMessage:
    """A verified notification as a message: every known topic is acknowledged without a
    stock effect (see ``KNOWN_TOPICS``); an unknown one likewise, as for every platform."""
    found = envelope(body)
    if found.topic != topic:
        raise WebhookParseError(f"The body's topic {found.topic!r} is not {topic!r}.")
    return WebhookMessage(kind=MessageKind.IGNORED, reference=found.dedupe_key)


def _object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise WebhookParseError(f"Body is not valid JSON: {error}.") from None
    if not isinstance(payload, dict):
        raise WebhookParseError("Body is not a JSON object.")
    return payload
