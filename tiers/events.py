"""The event type the tiers app emits, and its payload."""

from __future__ import annotations

from typing import Any

from webhooks import catalog

TIER_CHANGED = "tier.changed"

EXAMPLE = {
    "member_id": 42,
    "from": "silver",
    "to": "gold",
    "reason": "upgrade",
    "grace_until": None,
    "locked_until": None,
    "note": "",
    "effective_on": "2025-03-15",
}


def register() -> None:
    catalog.register(
        TIER_CHANGED,
        "A member's tier or its grace changed. `reason`: upgrade, downgrade, manual, "
        "grace_started (with `grace_until`: the day the member moves down unless they "
        "re-qualify) or grace_ended (re-qualified; `from` = `to`).",
        EXAMPLE,
    )


def tier_changed_payload(change: Any, *, from_code: str | None, to_code: str) -> dict[str, Any]:
    return {
        "member_id": change.member_id,
        "from": from_code,
        "to": to_code,
        "reason": change.reason,
        "grace_until": change.grace_until,
        "locked_until": change.locked_until,
        "note": change.note,
        "effective_on": change.effective_on,
    }
