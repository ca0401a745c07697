"""Event types the webhooks app emits itself."""

from __future__ import annotations

from . import catalog


def register() -> None:
    catalog.register(
        "webhook.test",
        "Sent by POST /webhook-endpoints/{id}/test (or the admin) to that endpoint only; not "
        "in the event stream.",
        {"endpoint_id": 7, "message": "A test event.", "sent_by": "integration:3"},
        member_scoped=False,
    )
    catalog.register(
        "webhook.endpoint_disabled",
        "A webhook endpoint of the program was disabled automatically (it answered 410 Gone, "
        "or every attempt failed for 5 days); sent to the program's other endpoints.",
        {
            "endpoint": {"id": 7, "url": "https://crm.example.com/hooks/loyalty", "description": "CRM"},
            "reason": "Every attempt failed for 5 days (last: HTTP 503).",
            "disabled_at": "2026-03-06T09:12:44Z",
            "failing_since": "2026-03-01T09:10:02Z",
        },
        member_scoped=False,
    )
