"""OpenAPI postprocessing hook: the event catalog in the API docs.

Every registered event type becomes a named example (its full envelope) of
``GET /events/{event_id}`` and of the stream, and a table in the stream's description, so
integrators see each payload without calling the API.
"""

from __future__ import annotations

from typing import Any

from . import catalog


def _envelope(event_type: catalog.EventType) -> dict[str, Any]:
    return {
        "id": "evt_5f1c2a9e0b7d4c3a8e6f1b2c",
        "cursor": "NzQ1MTIuMTAyNA",
        "type": event_type.name,
        "occurred_at": "2026-03-01T09:10:02Z",
        "recorded_at": "2026-03-01T09:10:02Z",
        "program_id": 1,
        "member_id": 42 if event_type.member_scoped else None,
        "member_sequence": 7 if event_type.member_scoped else None,
        "schema_version": 1,
        "data": event_type.example,
    }


def _catalog_table() -> str:
    rows = [
        f"| `{event_type.name}` | {event_type.description.replace('|', '/')} |"
        for event_type in catalog.all_types()
    ]
    return "\n".join(["| Type | Meaning |", "| --- | --- |", *rows])


def add_event_catalog(result, generator, request, public):
    examples = {
        event_type.name: {"summary": event_type.description[:120], "value": _envelope(event_type)}
        for event_type in catalog.all_types()
    }
    for path, path_item in result.get("paths", {}).items():
        operation = path_item.get("get")
        if operation is None:
            continue
        if path.endswith("/events/{event_id}"):
            content = operation["responses"].get("200", {}).get("content", {}).get("application/json")
            if content is not None:
                content["examples"] = examples
        elif path.endswith("/events"):
            operation["description"] = (
                f"{operation.get('description', '')}\n\n**Event types** (payload examples: "
                f"GET /events/{{event_id}} and GET /event-types):\n\n{_catalog_table()}"
            )
    return result
