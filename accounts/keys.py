"""What an API key looks like and how it is stored (no Django, no DRF: imported early)."""

from __future__ import annotations

import hashlib
import secrets

# Keys look like "nvt_<43 url-safe characters>": the prefix makes a leaked key easy to
# recognise (and to search for in logs and repositories).
KEY_PREFIX = "nvt_"
# Characters of the key kept in clear to tell tokens apart in lists.
SHOWN_PREFIX_LENGTH = 12


def new_key() -> str:
    """A fresh key: 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest_of(key: str) -> str:
    """The stored form of a key (SHA-256, hex). The key is 256 random bits, so a fast hash
    is as safe as a slow one here, and costs nothing per request."""
    return hashlib.sha256(key.encode()).hexdigest()
