"""The statements that run for every webhook and every push, prepared on the server.

Django binds parameters on the client, so PostgreSQL parses and plans each of its
statements again every time. For the few statements that run for every receipt and every
push, planning cost more than running them (pg_stat_statements with planning tracked, at
300 webhooks/s: 1.7 ms of planning against 1.0 ms of execution per receipt). These run
server-side bound and prepared by psycopg, on Django's connection: in its transaction,
with its error wrapping.

A prepared statement's generic plan can use a partial index only when the index's
condition is written in the SQL text: keep such constants (statuses, ``attempts = 0``)
literal, never parameters. Nor can it size a subquery by its ``LIMIT`` parameter: an
``UPDATE … WHERE id IN (SELECT … LIMIT %(limit)s FOR UPDATE SKIP LOCKED)`` was planned as
a hash of the claimed ids probed by a scan of the whole table. Claims write
``id = ANY(ARRAY(SELECT …))``, which looks each claimed id up by its key
(``tests/channels/test_claim_plans.py``).

Every integer parameter is sent as a bigint. psycopg otherwise sends each int as the
smallest type that holds it, so one statement over lists of ids ran under a new type
signature whenever its ids changed size: a prepared statement of its own each time,
planned anew, and evicting the others from the connection's cache of prepared statements.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.db.models.base import DEFERRED
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper

ModelT = TypeVar("ModelT", bound=Model)


def fetch(sql: str, params: Mapping[str, Any], *, binary: bool = True) -> list[tuple[Any, ...]]:
    """The rows of a statement (none for a statement that returns none)."""
    database = _usable_database()
    cursor = _cursor(database)
    started = time.monotonic()
    try:
        with database.wrap_database_errors:
            cursor.execute(sql, params, prepare=True, binary=binary)
            return cursor.fetchall() if cursor.description is not None else []
    finally:
        cursor.close()
        _log(database, sql, params, started)


def instances(model: type[ModelT], sql: str, params: Mapping[str, Any]) -> list[ModelT]:
    """Model instances from a statement selecting columns of ``model``'s table, as
    ``Model.objects.raw`` builds them: each field's database converter applied (JSON
    decoded, secrets decrypted), a field not selected left deferred, any other column set
    as an attribute of its name.

    Text results: Django's converters expect what its own cursor returns (JSON as text).
    """
    database = _usable_database()
    cursor = _cursor(database)
    started = time.monotonic()
    try:
        with database.wrap_database_errors:
            cursor.execute(sql, params, prepare=True, binary=False)
            rows = cursor.fetchall()
            columns = [column.name for column in cursor.description or ()]
    finally:
        cursor.close()
        _log(database, sql, params, started)
    fields = model._meta.concrete_fields
    field_by_column = {field.column: field for field in fields}
    found = []
    for row in rows:
        by_attname: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        for column, value in zip(columns, row, strict=True):
            field = field_by_column.get(column)
            if field is None:
                extras[column] = value
            else:
                by_attname[field.attname] = _from_database(field, value, database)
        instance = model.from_db(
            database.alias,
            list(by_attname),
            [by_attname.get(field.attname, DEFERRED) for field in fields],
        )
        for name, value in extras.items():
            setattr(instance, name, value)
        found.append(instance)
    return found


# The connections whose integers are sent as bigints: set once per connection, since
# registering a dumper for each cursor cost more than a statement's own parameters.
_sending_bigints: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()


def _cursor(database: Any) -> psycopg.Cursor[Any]:
    """A server-side binding cursor on Django's connection, its integers sent as bigints.

    The dumpers are the connection's, so Django's own cursors (bound on the client) write a
    list of integers as a bigint array too; a lone integer stays an untyped literal."""
    raw = database.connection
    if raw not in _sending_bigints:
        raw.adapters.register_dumper(int, Int8BinaryDumper)
        raw.adapters.register_dumper(int, Int8Dumper)
        _sending_bigints.add(raw)
    return psycopg.Cursor(raw)


def _log(database: Any, sql: str, params: Mapping[str, Any], started: float) -> None:
    """Into the connection's query log when it keeps one (``DEBUG``, the tests' query
    counts), as Django's own cursor does."""
    if database.queries_logged:
        database.queries_log.append(
            {"sql": f"{sql} -- {dict(params)!r}", "time": f"{time.monotonic() - started:.3f}"}
        )


def _usable_database() -> Any:
    """Django's connection, checked and opened as its own cursors are: a connection the
    server ended (a restart, an operator) is replaced at the first statement of a task or
    request, not used and failed."""
    database = connections[DEFAULT_DB_ALIAS]  # once: each use of the proxy looks it up
    database.close_if_health_check_failed()
    database.ensure_connection()
    return database


def _from_database(field: Any, value: Any, database: Any) -> Any:
    converter = getattr(field, "from_db_value", None)
    if converter is None or value is None:
        return value
    return converter(value, None, database)
