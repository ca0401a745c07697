"""Encryption at rest for webhook secrets (Fernet: AES-128-CBC + HMAC-SHA256).

The secrets have to be read back in clear to sign deliveries, so they are encrypted rather
than hashed. Keys come from ``FIELD_ENCRYPTION_KEY`` (comma-separated Fernet keys: the
first encrypts, every one decrypts, which allows rotating the key); without it one key is
derived from ``SECRET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

SECRET_PREFIX = "whsec_"


def derived_key(secret_key: str) -> str:
    digest = hashlib.sha256(f"webhooks.crypto:{secret_key}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _keys() -> tuple[str, ...]:
    configured = tuple(key.strip() for key in settings.FIELD_ENCRYPTION_KEY if key.strip())
    return configured or (derived_key(settings.SECRET_KEY),)


def encrypt(value: str) -> str:
    return _fernet(_keys()).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """Raises ``InvalidToken`` when no configured key opens the token."""
    return _fernet(_keys()).decrypt(token.encode()).decode()


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


__all__ = ["InvalidToken", "decrypt", "derived_key", "encrypt", "new_webhook_secret"]
