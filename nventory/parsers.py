"""The API's one request format: JSON, bounded in size and in nesting.

A module of its own, because DRF's settings import it by dotted path while DRF itself is
still being imported.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

# No request of this API needs more than a handful of levels (a bundle: body, lines, a
# line); a body nested deeper is refused before anything walks it.
MAX_JSON_DEPTH = 32


class RequestBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is over the size limit."
    default_code = "body_too_large"


def max_body_bytes() -> int:
    """The largest request body the API reads (``API_MAX_BODY_BYTES``)."""
    return int(settings.API_MAX_BODY_BYTES)


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, reading at most ``API_MAX_BODY_BYTES`` (413 beyond) and refusing
    a document nested deeper than ``MAX_JSON_DEPTH`` (400), never a ``RecursionError``."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = max_body_bytes()
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestBodyTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
            document = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH}.") from None
        except (ValueError, LookupError) as error:
            raise ParseError(f"JSON parse error - {error}") from None
        if json_depth(document) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH}.")
        return document


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser takes them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


def json_depth(document: Any) -> int:
    """How deeply lists and objects nest in a parsed document (a scalar is 0), walked
    without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        pending.extend((child, depth) for child in children)
    return deepest
