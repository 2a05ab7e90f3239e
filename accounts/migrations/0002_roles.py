"""The roles of nventory/permissions.py as groups, so that an administrator grants a person
or an API client a role rather than a list of permissions. After every later `migrate` the
same function runs again (AccountsConfig), so models added later are readable by every role."""

from django.db import migrations

from accounts.roles import sync_roles


def create_roles(apps, schema_editor):
    sync_roles(apps)


def delete_roles(apps, schema_editor):
    from nventory.permissions import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_api_tokens"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("inventory", "0006_reservation_owner"),
        ("bundles", "0001_bills_of_materials"),
        ("channels", "0029_tiktok_platform"),
        ("reconciliation", "0002_schedules"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
