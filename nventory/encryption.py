"""Secrets at rest: model fields stored encrypted with a rotatable keyring of Fernet keys.

A channel's credentials and webhook secrets are read by the workers on every call, so
they cannot be hashed; they are encrypted (AES-128-CBC with an HMAC-SHA256, Fernet) with
keys that are not in the database: ``SECRETS_ENCRYPTION_KEYS`` from the environment, or,
for local runs, a key file generated under the data directory (``SECRETS_KEY_FILE``).

The keyring is a ``MultiFernet``: the first key encrypts, every key decrypts. Rotation is
putting a new key first, running ``manage.py rotate_secrets_key`` (every stored value is
encrypted again with it), then dropping the old key.
https://cryptography.io/en/latest/fernet/#cryptography.fernet.MultiFernet.rotate
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression


class UndecryptableSecret(ImproperlyConfigured):
    """A stored secret none of the configured keys decrypts (a key dropped too early)."""


def generate_key() -> str:
    """A new random Fernet key, as text."""
    return Fernet.generate_key().decode()


def configured_keys() -> list[str]:
    """The keys, newest first: from ``SECRETS_ENCRYPTION_KEYS``, else the local key file
    (created with one new key, readable by its owner only, when it is missing)."""
    keys = [key for key in settings.SECRETS_ENCRYPTION_KEYS if key]
    if keys:
        return keys
    return read_key_file(Path(settings.SECRETS_KEY_FILE))


def read_key_file(path: Path) -> list[str]:
    """The keys in the file, newest first; a missing file is created with a new key (two
    processes starting at once agree on one file: it is created exclusively)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(generate_key() + "\n")
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise ImproperlyConfigured(f"{path} holds no encryption key.")
    return keys


def add_key_to_file(path: Path, key: str) -> None:
    """Put ``key`` first in the key file (it encrypts from now on); the others stay, to
    decrypt what they encrypted."""
    keys = read_key_file(path)
    path.write_text("\n".join([key, *[k for k in keys if k != key]]) + "\n")
    path.chmod(0o600)


@functools.cache
def keyring() -> MultiFernet:
    """The configured keys as one ``MultiFernet`` (cached: ``forget_keyring`` after a
    change of keys)."""
    try:
        return MultiFernet([Fernet(key.encode()) for key in configured_keys()])
    except ValueError as error:
        raise ImproperlyConfigured(f"An encryption key is not a Fernet key: {error}") from None


def forget_keyring() -> None:
    """Read the keys again on next use (tests; after a rotation)."""
    keyring.cache_clear()
    decrypt.cache_clear()


def encrypt(text: str) -> str:
    """``text`` encrypted with the newest key, as a Fernet token."""
    return keyring().encrypt(text.encode()).decode()


# Remembered per token: a channel row is read, and its secrets decrypted, for every
# webhook it sends (a twentieth of the ingest worker's time at 300 webhooks/s). A token is
# unique to one encryption, and a key dropped from the keyring forgets them all.
@functools.lru_cache(maxsize=1024)
def decrypt(token: str) -> str:
    """The text of a token encrypted with any configured key; ``UndecryptableSecret``
    otherwise (never the token itself)."""
    try:
        return keyring().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret(
            "A stored secret cannot be decrypted with the configured keys "
            "(SECRETS_ENCRYPTION_KEYS): was a key dropped before its rows were rotated?"
        ) from None


def reencrypt(token: str) -> str:
    """The same secret encrypted with the newest key (``MultiFernet.rotate``)."""
    try:
        return keyring().rotate(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret(
            "A stored secret cannot be decrypted with the configured keys."
        ) from None


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; Python code sees the text. Never looked up by value
    (each encryption differs)."""

    def from_db_value(
        self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper
    ) -> Any:
        if value is None:
            return None
        return self._from_text(decrypt(value))

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return encrypt(self._to_text(value))

    def _from_text(self, text: str) -> Any:
        return text

    def _to_text(self, value: Any) -> str:
        return str(value)


class EncryptedJSONField(EncryptedTextField):
    """A JSON object stored as a Fernet token of its text; Python code sees the object."""

    # What django-stubs types the attribute as (a TextField's would be str).
    _pyi_private_set_type: dict[str, Any]  # type: ignore[assignment]
    _pyi_private_get_type: dict[str, Any]  # type: ignore[assignment]

    def _from_text(self, text: str) -> Any:
        return json.loads(text)

    def _to_text(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def value_to_string(self, obj: models.Model) -> str:
        return self._to_text(self.value_from_object(obj))


def encrypted_columns() -> list[tuple[type[models.Model], list[str]]]:
    """Every model with encrypted fields, and the columns of those fields."""
    from django.apps import apps

    found = []
    for model in apps.get_models():
        columns = [
            str(field.column)
            for field in model._meta.concrete_fields
            if isinstance(field, EncryptedTextField)
        ]
        if columns:
            found.append((model, columns))
    return found


def reencrypt_every_secret() -> int:
    """Encrypt every stored secret again with the newest key; how many rows were written.

    Each table in one transaction, its rows locked (``FOR UPDATE``) so that a secret saved
    meanwhile is not written over. Raw SQL: the values are rotated as tokens, never
    decrypted into model instances. ``UndecryptableSecret`` if a row has a value no key
    decrypts (nothing of that table is written).
    """
    from django.db import connection, transaction

    forget_keyring()
    written = 0
    for model, columns in encrypted_columns():
        table = connection.ops.quote_name(model._meta.db_table)
        pk = connection.ops.quote_name(str(model._meta.pk.column))
        quoted = [connection.ops.quote_name(column) for column in columns]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT {pk}, {', '.join(quoted)} FROM {table} FOR UPDATE")
            for row_pk, *values in cursor.fetchall():
                assignments = ", ".join(f"{column} = %s" for column in quoted)
                cursor.execute(
                    f"UPDATE {table} SET {assignments} WHERE {pk} = %s",
                    [None if value is None else reencrypt(value) for value in values] + [row_pk],
                )
                written += 1
    return written
