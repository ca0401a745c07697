"""Voucher codes: 15 random characters and a check character, from an alphabet without
the characters people confuse (0/O, 1/I/L).

- 31 symbols, 15 drawn with ``secrets`` (a CSPRNG): 31**15 ~ 2**74 codes, so guessing a
  valid one is hopeless even with millions issued (and the API is rate-limited).
- The 16th character is a check character: with positions weighted 1 to 16, the weighted
  sum of all 16 symbol values is 0 modulo 31. As 31 is prime, any single mistyped
  character and any swap of two neighbours changes the sum, so it is caught before the
  database is asked.
- Stored upper-case without separators; shown as ``XXXX-XXXX-XXXX-XXXX``. Input may have
  spaces or dashes and any case.
"""

from __future__ import annotations

import re
import secrets

VOUCHER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
RANDOM_LENGTH = 15
CODE_LENGTH = RANDOM_LENGTH + 1
_VALUE = {char: index for index, char in enumerate(VOUCHER_ALPHABET)}
_SEPARATORS = re.compile(r"[\s\-]")


def check_character(payload: str) -> str:
    """The symbol that makes the weighted sum of ``payload`` + it zero modulo 31."""
    base = len(VOUCHER_ALPHABET)
    total = sum((position + 1) * _VALUE[char] for position, char in enumerate(payload))
    weight = len(payload) + 1
    # c * weight = -total (mod 31); 31 is prime, so weight has an inverse.
    return VOUCHER_ALPHABET[(-total * pow(weight, -1, base)) % base]


def generate_code() -> str:
    payload = "".join(secrets.choice(VOUCHER_ALPHABET) for _ in range(RANDOM_LENGTH))
    return payload + check_character(payload)


def normalize_code(text: str) -> str:
    return _SEPARATORS.sub("", text or "").upper()


def is_well_formed(code: str) -> bool:
    """Right length, alphabet and check character (``code`` normalised)."""
    if len(code) != CODE_LENGTH or any(char not in _VALUE for char in code):
        return False
    return check_character(code[:-1]) == code[-1]


def format_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
