"""Every admin page a program manager can open answers without an error, on the demo data.

The domain tests cover what each admin does; this walks all of them as a superuser (list,
search, filters, add form and the change form of an existing row) so that a broken column,
filter or form shows up here even where no test of its own looks at it.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import NoReverseMatch, reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    user = get_user_model().objects.create_superuser("walker", "walker@example.com", "pw-walker-123")
    client.force_login(user)
    client.user = user
    return client


def _url(model, action: str, *args) -> str | None:
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{action}", args=args)
    except NoReverseMatch:
        return None


def test_admin_index_lists_the_apps(superuser_client):
    response = superuser_client.get(reverse("admin:index"))
    assert response.status_code == 200
    for app in ("programs", "members", "points", "tiers", "rewards", "webhooks", "jobs"):
        assert f"/admin/{app}/" in response.content.decode()


def test_admin_pages_open_without_error(superuser_client):
    # One walk over every registered admin (the demo data is loaded once), failures
    # collected so that one run names all the broken pages.
    failures = []

    def check(url, allowed=(200,), **params):
        response = superuser_client.get(url, params)
        if response.status_code not in allowed:
            failures.append(f"{url} {params or ''}: {response.status_code}")
        return response

    for model, model_admin in admin.site._registry.items():
        changelist = _url(model, "changelist")
        if not changelist:
            failures.append(f"{model._meta.label} has no change list")
            continue
        response = check(changelist)
        if response.status_code == 200:
            # Each filter of the sidebar, with its last choice (the first is "All").
            changelist_view = response.context["cl"]
            for spec in changelist_view.filter_specs:
                choices = list(spec.choices(changelist_view))
                if len(choices) > 1:
                    check(changelist + choices[-1]["query_string"])
        if model_admin.search_fields:
            check(changelist, q="demo")
        add = _url(model, "add")
        if add:
            check(add, allowed=(200, 403))  # 403 where adding by hand is refused (ledger rows)
        request = RequestFactory().get(changelist)
        request.user = superuser_client.user
        obj = model_admin.get_queryset(request).order_by("pk").first()
        if obj is not None:
            check(_url(model, "change", obj.pk))
    assert not failures, "\n".join(failures)
