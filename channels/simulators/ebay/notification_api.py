"""The simulator's side of eBay's Notification API (§5.1, EB3/EB4/EB5): a signing key,
the public key as ``getPublicKey`` answers it, signed JSON notifications, the endpoint
challenge.

eBay signs every notification with an ECDSA key it publishes by id; the signature travels in
``X-EBAY-SIGNATURE`` as base64 of ``{"alg", "kid", "signature", "digest"}``, over the raw
body. A notification not acknowledged with a 2xx is sent again, ``publishAttemptCount``
raised (so each attempt is a new body, signed anew).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-EBAY-SIGNATURE"


class SigningKey:
    """One ECDSA P-256 key and its id, as eBay keeps several and names each."""

    def __init__(self) -> None:
        self.key_id = uuid.uuid4().hex
        self._private = ec.generate_private_key(ec.SECP256R1())

    def public_key_answer(self) -> dict[str, str]:
        """EB3: ``{"algorithm", "digest", "key"}``, the PEM on one line as eBay sends it."""
        pem = (
            self._private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return {"algorithm": "ECDSA", "digest": "SHA256", "key": pem.replace("\n", "")}

    def signature_header(self, body: bytes) -> str:
        """EB4: base64 of the JSON naming the key and carrying the DER signature."""
        signature = self._private.sign(body, ec.ECDSA(hashes.SHA256()))
        decoded = {
            "alg": "ecdsa",
            "kid": self.key_id,
            "signature": base64.b64encode(signature).decode(),
            "digest": "SHA256",
        }
        return base64.b64encode(json.dumps(decoded).encode()).decode()


def notification_body(
    *,
    topic: str,
    notification_id: str,
    event_date: str,
    attempt: int,
    data: dict[str, Any],
) -> bytes:
    """EB4: the envelope of one notification, at its ``attempt``-th sending."""
    payload = {
        "metadata": {"topic": topic, "schemaVersion": "1.0", "deprecated": False},
        "notification": {
            "notificationId": notification_id,
            "eventDate": event_date,
            "publishDate": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "publishAttemptCount": attempt,
            "data": data,
        },
    }
    return json.dumps(payload).encode()


def challenge_response(challenge_code: str, verification_token: str, endpoint_url: str) -> str:
    """EB5: ``hex(SHA256(challengeCode + verificationToken + endpoint))``."""
    return hashlib.sha256(
        (challenge_code + verification_token + endpoint_url).encode()
    ).hexdigest()
