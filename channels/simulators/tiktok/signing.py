"""TikTok Shop's two signatures, shared by the simulator's checks and its webhooks.

Pure functions over strings and bytes, no Django: ``CHANNEL_APIS.md`` §4.2 (requests) and
§4.1 (webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

# §4.2 step 1: the parameters never signed.
UNSIGNED_PARAMETERS = frozenset({"sign", "access_token"})


def request_sign(*, secret: str, path: str, params: Mapping[str, str], body: bytes) -> str:
    """§4.2: hex HMAC-SHA256, keyed with the app secret, of ``secret + path + k1v1k2v2… +
    body + secret`` (parameters sorted by key, ``sign`` and ``access_token`` left out; the
    body byte for byte as sent)."""
    joined = "".join(
        f"{key}{value}" for key, value in sorted(params.items()) if key not in UNSIGNED_PARAMETERS
    )
    message = secret.encode() + path.encode() + joined.encode() + body + secret.encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_signature(*, app_key: str, secret: str, body: bytes) -> str:
    """§4.1: lowercase hex HMAC-SHA256, keyed with the app secret, of ``app_key + body``;
    sent as the whole ``Authorization`` header."""
    return hmac.new(secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()
