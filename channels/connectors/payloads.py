"""Reading a platform's JSON body: bounded in nesting, every failure a ``WebhookParseError``.

Every connector reads webhook and notification bodies through ``load_json``, so that a
correctly signed body nested thousands deep is quarantined like any other unreadable
body, at the receiver as in the ingest worker, instead of raising ``RecursionError``.
"""

from __future__ import annotations

import json
from typing import Any

from channels.connectors.types import WebhookParseError
from nventory.parsers import json_depth

# The platforms' documents nest a dozen levels at most (an order, its lines, a line's tax
# lines and their amounts); far deeper is not a platform's message.
MAX_JSON_DEPTH = 64


def load_json(body: bytes | str) -> Any:
    """The parsed document; ``WebhookParseError`` for a body that is not UTF-8 JSON, uses
    NaN or Infinity, or nests deeper than ``MAX_JSON_DEPTH``."""
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise WebhookParseError(f"Body is nested deeper than {MAX_JSON_DEPTH}.") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise WebhookParseError(f"Body is not valid JSON: {error}.") from None
    if json_depth(document) > MAX_JSON_DEPTH:
        raise WebhookParseError(f"Body is nested deeper than {MAX_JSON_DEPTH}.")
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
