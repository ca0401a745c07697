"""Who is doing something: a staff user, an integration, or the system itself.

Services take an ``Actor`` and record it on what they write. The API and the admin set the
current actor for the request, so that django-simple-history can store the integration
next to (or instead of) the staff user.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    user_id: int | None = None
    integration_id: int | None = None
    label: str = "system"

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(label=label)

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(user_id=user.pk, label=f"user:{user.get_username()}")

    @classmethod
    def for_integration(cls, integration: Any) -> Actor:
        return cls(integration_id=integration.pk, label=f"integration:{integration.pk}")

    def as_fields(self, prefix: str = "actor") -> dict[str, int | None]:
        """Keyword arguments for models with ``<prefix>_user`` / ``<prefix>_integration``."""
        return {f"{prefix}_user_id": self.user_id, f"{prefix}_integration_id": self.integration_id}


_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("actor", default=None)


def current_actor() -> Actor | None:
    return _current.get()


def set_current_actor(actor: Actor | None) -> contextvars.Token:
    return _current.set(actor)


def reset_current_actor(token: contextvars.Token) -> None:
    _current.reset(token)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)
