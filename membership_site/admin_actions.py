"""Admin actions that ask for input (a reason, a label) on an intermediate page and then
call a service for each selected object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse

from membership_site.actors import Actor
from membership_site.errors import DomainError


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 60}))


def form_action(
    *,
    name: str,
    description: str,
    apply: Callable[[Any, Actor, dict[str, Any]], Any],
    form_class: type[forms.Form] | Callable[[Any], type[forms.Form]] = ReasonForm,
    permissions: tuple[str, ...] = ("change",),
):
    """Build an admin action: show ``form_class``, then ``apply(obj, actor, cleaned_data)``
    for each selected object. Domain errors are reported per object; the others go on."""

    def action(modeladmin, request, queryset):
        form_cls = form_class(request) if not isinstance(form_class, type) else form_class
        if "apply" in request.POST:
            form = form_cls(request.POST)
            if form.is_valid():
                actor = Actor.for_user(request.user)
                done, failed = 0, []
                for obj in queryset:
                    try:
                        apply(obj, actor, form.cleaned_data)
                        done += 1
                    except DomainError as error:
                        failed.append(f"{obj}: {error.detail}")
                if done:
                    modeladmin.message_user(request, f"{description}: {done} done.", messages.SUCCESS)
                for failure in failed:
                    modeladmin.message_user(request, failure, messages.ERROR)
                return None
        else:
            form = form_cls()
        return TemplateResponse(
            request,
            "admin/form_action.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": description,
                "objects": queryset,
                "form": form,
                "action": name,
                "opts": modeladmin.model._meta,
                "checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    action.__name__ = name
    return admin.action(description=description, permissions=permissions)(action)
