"""Create the staff role groups: Program manager, Support agent, Auditor.

Permissions are created first (Django normally does that after all migrations), so the
groups get them now; ``roles.sync_groups`` runs again after every ``migrate`` to cover
models added later.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.contenttypes.management import create_contenttypes
from django.db import migrations


def create_role_groups(apps, schema_editor):
    from membership_site.roles import sync_groups

    for app_config in global_apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0)
        create_permissions(app_config, verbosity=0)
    sync_groups()


def remove_role_groups(apps, schema_editor):
    from membership_site.roles import ROLE_GRANTS

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_GRANTS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("programs", "0001_initial"),
        ("integrations", "0001_initial"),
        ("members", "0001_initial"),
        ("webhooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
