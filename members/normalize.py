"""Normalising identifiers the way they are stored and looked up."""

from __future__ import annotations

import re
import secrets
from datetime import date, tzinfo

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from .errors import InvalidBirthDateError, InvalidEmailError, InvalidMemberNumberError, InvalidPhoneError

EARLIEST_BIRTH_DATE = date(1900, 1, 1)

_MEMBER_NUMBER = re.compile(r"^\d{6,20}$")
_SEPARATORS = re.compile(r"[\s\-.]")


def check_birth_date(value: date, tz: tzinfo) -> date:
    """A birth date must not be in the future (in the program's time zone) nor before 1900."""
    if not EARLIEST_BIRTH_DATE <= value <= timezone.localdate(timezone=tz):
        raise InvalidBirthDateError(
            f"{value.isoformat()} is in the future or before {EARLIEST_BIRTH_DATE.year}.", field="birth_date"
        )
    return value


def normalize_email(raw: str) -> str:
    """Lower-case and check an e-mail address; '' stays ''."""
    email = (raw or "").strip().lower()
    if not email:
        return ""
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidEmailError(f"'{raw}' is not a valid e-mail address.", field="email") from None
    return email


def normalize_phone(raw: str, region: str = "") -> str:
    """E.164 form of a phone number; numbers without '+' are read in ``region``."""
    if not (raw or "").strip():
        return ""
    try:
        parsed = phonenumbers.parse(raw, (region or settings.DEFAULT_PHONE_REGION).upper())
    except phonenumbers.NumberParseException:
        raise InvalidPhoneError(f"'{raw}' is not a phone number.", field="phone") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneError(f"'{raw}' is not a valid phone number.", field="phone")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_card_number(raw: str) -> str:
    return _SEPARATORS.sub("", raw or "").upper()


def normalize_member_number(raw: str) -> str:
    number = _SEPARATORS.sub("", raw or "")
    if not _MEMBER_NUMBER.match(number):
        raise InvalidMemberNumberError(f"'{raw}' is not 6 to 20 digits.", field="number")
    return number


def luhn_check_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def generate_member_number() -> str:
    """Ten digits: nine random (no leading zero) and a Luhn check digit, so a mistyped
    digit at a till is caught before any lookup."""
    body = str(secrets.randbelow(9 * 10**8) + 10**8)
    return body + luhn_check_digit(body)


def generate_card_number() -> str:
    """Sixteen digits with a Luhn check digit (prefix 9 keeps them apart from bank cards)."""
    body = "9" + "".join(str(secrets.randbelow(10)) for _ in range(14))
    return body + luhn_check_digit(body)
