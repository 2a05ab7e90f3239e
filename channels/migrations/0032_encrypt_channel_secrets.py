"""Channel credentials and webhook secrets encrypted at rest (nventory.encryption).

The columns become text holding Fernet tokens; the rows already there are encrypted with
the newest configured key (and decrypted back to clear text when unapplied). Raw SQL: the
model's fields would try to decrypt the clear text these rows hold until then.
"""

import json

from django.db import migrations

import nventory.encryption

_SECRET_COLUMNS = ("credentials", "webhook_secret", "previous_webhook_secret")


def _transform(schema_editor, convert):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {', '.join(_SECRET_COLUMNS)} FROM channels_channel")
        rows = cursor.fetchall()
        for channel_id, *values in rows:
            cursor.execute(
                "UPDATE channels_channel SET credentials = %s, webhook_secret = %s, "
                "previous_webhook_secret = %s WHERE id = %s",
                [
                    *(
                        convert(column, value)
                        for column, value in zip(_SECRET_COLUMNS, values, strict=True)
                    ),
                    channel_id,
                ],
            )


def encrypt_rows(apps, schema_editor):
    def encrypt(column, value):
        if value is None:
            return None
        if column == "credentials":
            value = json.dumps(json.loads(value), sort_keys=True)
        return nventory.encryption.encrypt(value)

    _transform(schema_editor, encrypt)


def decrypt_rows(apps, schema_editor):
    def decrypt(column, value):
        return None if value is None else nventory.encryption.decrypt(value)

    _transform(schema_editor, decrypt)


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0031_channel_operations_by_operators"),
    ]

    operations = [
        migrations.AlterField(
            model_name="channel",
            name="credentials",
            field=nventory.encryption.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="channel",
            name="previous_webhook_secret",
            field=nventory.encryption.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="channel",
            name="webhook_secret",
            field=nventory.encryption.EncryptedTextField(blank=True),
        ),
        migrations.RunPython(encrypt_rows, decrypt_rows, elidable=False),
    ]
