"""The API's pages: a module of its own, because DRF's settings import it by dotted path
while DRF itself is still being imported."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Pages of at most ``max_limit`` rows, whatever ``?limit=`` asks: one request must not
    read a whole table into memory.

    A ``limit`` or ``offset`` that is not a whole number in range is a 400 naming it (DRF's
    own class silently falls back on the defaults, so a misspelt value reads another page).
    """

    max_limit = 1000
    # PostgreSQL's OFFSET is a bigint; far beyond any table here, and refused before it is sent.
    max_offset = 1_000_000_000

    def get_limit(self, request: Request) -> int | None:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.default_limit
        limit = _whole_number(raw, name=self.limit_query_param, minimum=1)
        return min(limit, self.max_limit)

    def get_offset(self, request: Request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None:
            return 0
        return _whole_number(raw, name=self.offset_query_param, minimum=0, maximum=self.max_offset)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Rows per page: at most {self.max_limit} are answered, whatever is asked."
                )
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update(minimum=0, maximum=self.max_offset)
        return parameters


def _whole_number(raw: str, *, name: str, minimum: int, maximum: int | None = None) -> int:
    # ASCII digits only: int() would also take " 7", "+7", "7_000" and other scripts' digits.
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError({name: ["A whole number is required."]})
    # Python refuses to convert a string of thousands of digits; any of them is too large.
    value = int(raw) if len(raw) <= 30 else 10**30
    if value < minimum:
        raise ValidationError({name: [f"Must be at least {minimum}."]})
    if maximum is not None and value > maximum:
        raise ValidationError({name: [f"Must be at most {maximum}."]})
    return value
