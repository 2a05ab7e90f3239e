"""The API's pages: a module of its own, because DRF's settings import it by dotted path
while DRF itself is still being imported."""

from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Pages of at most ``max_limit`` rows, whatever ``?limit=`` asks: one request must not
    read a whole table into memory."""

    max_limit = 1000
