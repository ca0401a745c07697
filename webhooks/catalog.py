"""The catalog of event types.

Domain apps register the types they emit (in ``AppConfig.ready``), each with a description
and an example payload; the catalog is served by ``GET /api/v1/event-types``, shown in the
API docs and ``event_record`` refuses types that are not registered (a typo would otherwise
reach every receiver).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    example: dict[str, Any]
    member_scoped: bool = True


_catalog: dict[str, EventType] = {}


def register(name: str, description: str, example: dict[str, Any], member_scoped: bool = True) -> None:
    """Add an event type. ``member_scoped`` types concern one member (their events carry
    ``member_id`` and a per-member sequence number); the others concern the program."""
    _catalog[name] = EventType(name, description, example, member_scoped)


def get(name: str) -> EventType | None:
    return _catalog.get(name)


def names() -> list[str]:
    return sorted(_catalog)


def all_types() -> list[EventType]:
    return sorted(_catalog.values(), key=lambda event_type: event_type.name)
