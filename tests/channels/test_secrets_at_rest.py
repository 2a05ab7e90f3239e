"""Channel credentials and webhook secrets at rest: encrypted in the database, readable by
the code, rotatable to a new key; the migration encrypts the rows that were in clear."""

from __future__ import annotations

import importlib
import json
import types
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from channels.models import Channel
from nventory import encryption
from tests import factories

pytestmark = pytest.mark.django_db

ACCESS_TOKEN = "shpat_canary_7f3c2a9e41d0"
WEBHOOK_SECRET = "whsec_canary_0b8e6d5c4a3f2e1d"


@pytest.fixture
def keys(settings, tmp_path):
    """Keys of this test only, from the environment setting (newest first)."""
    first = Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [first]
    settings.SECRETS_KEY_FILE = tmp_path / "secrets.keys"
    encryption.forget_keyring()
    yield settings
    encryption.forget_keyring()


def _raw_columns(channel_id: int) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials, webhook_secret, previous_webhook_secret "
            "FROM channels_channel WHERE id = %s",
            [channel_id],
        )
        credentials, secret, previous = cursor.fetchone()
    return {"credentials": credentials, "webhook_secret": secret, "previous": previous}


def _canary_channel() -> Channel:
    return factories.make_channel(
        credentials={"access_token": ACCESS_TOKEN}, webhook_secret=WEBHOOK_SECRET
    )


def test_secrets_are_not_in_clear_in_the_database(keys):
    channel = _canary_channel()
    raw = _raw_columns(channel.pk)

    assert all(ACCESS_TOKEN not in value and WEBHOOK_SECRET not in value for value in raw.values())
    assert all(value.startswith("gAAAA") for value in raw.values())  # Fernet tokens
    fresh = Channel.objects.get(pk=channel.pk)
    assert (fresh.credentials, fresh.webhook_secret) == (
        {"access_token": ACCESS_TOKEN},
        WEBHOOK_SECRET,
    )


def test_a_database_dump_without_the_key_reveals_nothing(keys):
    """Another key (the database stolen without the environment) cannot read the rows."""
    channel = _canary_channel()
    keys.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    encryption.forget_keyring()
    with pytest.raises(encryption.UndecryptableSecret) as refused:
        Channel.objects.get(pk=channel.pk)
    assert WEBHOOK_SECRET not in str(refused.value)


def test_rotation_encrypts_every_row_with_the_new_key_and_the_old_one_can_go(keys):
    channel = _canary_channel()
    old_key = keys.SECRETS_ENCRYPTION_KEYS[0]
    before = _raw_columns(channel.pk)
    new_key = Fernet.generate_key().decode()
    keys.SECRETS_ENCRYPTION_KEYS = [new_key, old_key]

    output = StringIO()
    call_command("rotate_secrets_key", stdout=output)

    assert "rows encrypted with the newest key" in output.getvalue()
    after = _raw_columns(channel.pk)
    assert all(after[name] != before[name] for name in after)
    assert Fernet(new_key.encode()).decrypt(after["webhook_secret"].encode()).decode() == (
        WEBHOOK_SECRET
    )
    keys.SECRETS_ENCRYPTION_KEYS = [new_key]
    encryption.forget_keyring()
    assert Channel.objects.get(pk=channel.pk).credentials == {"access_token": ACCESS_TOKEN}


def test_local_runs_keep_a_generated_key_file_and_rotate_it(settings, tmp_path):
    settings.SECRETS_ENCRYPTION_KEYS = []
    settings.SECRETS_KEY_FILE = tmp_path / "data" / "secrets.keys"
    encryption.forget_keyring()
    try:
        channel = _canary_channel()
        key_file = settings.SECRETS_KEY_FILE
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert len(key_file.read_text().split()) == 1

        call_command("rotate_secrets_key", "--new-key", stdout=StringIO())

        assert len(key_file.read_text().split()) == 2
        newest = key_file.read_text().split()[0]
        raw = _raw_columns(channel.pk)["webhook_secret"]
        assert Fernet(newest.encode()).decrypt(raw.encode()).decode() == WEBHOOK_SECRET
    finally:
        encryption.forget_keyring()


def test_print_new_key_prints_a_key_alone(keys):
    output = StringIO()
    call_command("rotate_secrets_key", "--print-new-key", stdout=output)
    Fernet(output.getvalue().strip().encode())  # a valid key, nothing else


def test_the_migration_encrypts_rows_stored_in_clear_and_unapplying_decrypts_them(keys):
    """Rows as they were before it: clear text in the (now text) columns."""
    channel = _canary_channel()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE channels_channel SET credentials = %s, webhook_secret = %s, "
            "previous_webhook_secret = '' WHERE id = %s",
            [json.dumps({"access_token": ACCESS_TOKEN}), WEBHOOK_SECRET, channel.pk],
        )
    migration = importlib.import_module("channels.migrations.0032_encrypt_channel_secrets")
    schema_editor = types.SimpleNamespace(connection=connection)

    migration.encrypt_rows(None, schema_editor)

    assert WEBHOOK_SECRET not in _raw_columns(channel.pk)["webhook_secret"]
    fresh = Channel.objects.get(pk=channel.pk)
    assert (fresh.credentials, fresh.webhook_secret, fresh.previous_webhook_secret) == (
        {"access_token": ACCESS_TOKEN},
        WEBHOOK_SECRET,
        "",
    )
    migration.decrypt_rows(None, schema_editor)
    assert _raw_columns(channel.pk)["webhook_secret"] == WEBHOOK_SECRET


def test_a_short_webhook_secret_is_refused(keys):
    from channels import services

    with pytest.raises(services.InvalidWebhookSecret, match="at least 24"):
        factories.make_channel(webhook_secret="short-secret")
    channel = factories.make_channel()
    with pytest.raises(services.InvalidWebhookSecret):
        services.rotate_webhook_secret(channel_id=channel.pk, new_secret="whsec-2")
