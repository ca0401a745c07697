"""Hooks run by the members services and selectors (see membership_site.hooks)."""

from membership_site.hooks import Hook

member_created = Hook(
    "member_created",
    "Run with member= and actor= inside member_create's transaction, after the member, its "
    "cards, labels and consents exist (e.g. tiers assigns the default tier).",
)

member_status_changed = Hook(
    "member_status_changed",
    "Run with member=, from_status=, to_status= and actor= inside the status change.",
)

profile_sections = Hook(
    "profile_sections",
    "Run with members= (a list) by the compact profile; each receiver returns "
    "(section_name, {member_id: data}) using a fixed number of queries for the whole list, "
    "e.g. ('tier', {...}) or ('balances', {...}).",
)
