"""Writes for programs and locations."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from django.db import IntegrityError, transaction

from membership_site.actors import Actor

from . import hooks
from .currencies import is_valid_currency
from .errors import (
    InvalidCurrencyError,
    InvalidTimezoneError,
    LocationCodeTakenError,
    ProgramCodeTakenError,
)
from .models import Location, Program


def _check_timezone(timezone: str) -> None:
    if timezone not in available_timezones():
        raise InvalidTimezoneError(f"'{timezone}' is not an IANA time zone.", field="timezone")


def _check_currency(currency: str) -> None:
    if not is_valid_currency(currency):
        raise InvalidCurrencyError(f"'{currency}' is not an ISO 4217 code.", field="currency")


@transaction.atomic
def program_create(
    *,
    code: str,
    name: str,
    timezone: str = "UTC",
    currency: str = "USD",
    phone_region: str = "",
    actor: Actor,
) -> Program:
    """Create a program and let higher apps set up their defaults for it."""
    _check_timezone(timezone)
    currency = currency.upper()
    _check_currency(currency)
    if Program.objects.filter(code=code).exists():
        raise ProgramCodeTakenError(f"Program '{code}' already exists.", field="code")
    program = Program.objects.create(
        code=code,
        name=name,
        timezone=timezone,
        currency=currency,
        phone_region=phone_region.upper(),
    )
    hooks.program_created.run(program=program, actor=actor)
    return program


@transaction.atomic
def program_update(*, program: Program, actor: Actor, **fields: Any) -> Program:
    if "timezone" in fields:
        _check_timezone(fields["timezone"])
    if "currency" in fields:
        fields["currency"] = fields["currency"].upper()
        _check_currency(fields["currency"])
    # Only the given fields, on the locked row (the caller's copy may be stale).
    locked = Program.objects.select_for_update(no_key=True).get(pk=program.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
        setattr(program, name, value)
    locked.save(update_fields=[*fields, "updated_at"] if fields else None)
    return locked


@transaction.atomic
def location_create(
    *, program: Program, code: str, name: str, kind: str = Location.Kind.STORE, actor: Actor
) -> Location:
    try:
        with transaction.atomic():
            return Location.objects.create(program=program, code=code, name=name, kind=kind)
    except IntegrityError as exc:
        raise LocationCodeTakenError(
            f"Location '{code}' already exists in this program.", field="code"
        ) from exc


@transaction.atomic
def location_update(*, location: Location, actor: Actor, **fields: Any) -> Location:
    # Only the given fields, on the locked row (the caller's copy may be stale).
    locked = Location.objects.select_for_update(no_key=True).get(pk=location.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
        setattr(location, name, value)
    locked.save(update_fields=[*fields, "updated_at"] if fields else None)
    return locked
