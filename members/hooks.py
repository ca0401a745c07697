"""Hooks run by the members services and selectors (see membership_site.hooks)."""

from membership_site.hooks import Hook

members_created = Hook(
    "members_created",
    "Run with members= (a list of new members of one program) and actor= inside the "
    "creating transaction, after their cards, labels and consents exist (e.g. tiers assigns "
    "the default tier). Bulk paths (imports) call it once per chunk, so receivers should "
    "work set-based.",
)

member_status_changed = Hook(
    "member_status_changed",
    "Run with member=, from_status=, to_status= and actor= inside the status change.",
)

member_updated = Hook(
    "member_updated",
    "Run with member=, changed= (the names of the profile fields whose value changed) and "
    "actor= inside member_update's transaction, after the member is saved and before its "
    "member.updated event (e.g. points gives a profile-completion bonus). Bulk updates "
    "(imports) run members_updated instead: an app registers with both.",
)

members_updated = Hook(
    "members_updated",
    "The list form of member_updated, run by bulk updates (imports) once per chunk: with "
    "updates= (a list of (member, changed) pairs, members of one program whose profile "
    "changed, each saved) and actor=, inside the bulk update's transaction, before the "
    "members' member.updated events. Receivers should work set-based (a fixed number of "
    "queries for the list).",
)

profile_sections = Hook(
    "profile_sections",
    "Run with members= (a list) by the compact profile; each receiver returns "
    "(section_name, {member_id: data}) using a fixed number of queries for the whole list, "
    "e.g. ('tier', {...}) or ('balances', {...}).",
)

member_erased = Hook(
    "member_erased",
    "Run with member= and actor= inside member_erase's transaction, after the member's own "
    "personal data is gone: higher apps erase what they hold about the person (e.g. "
    "shipping addresses of rewards).",
)

export_sections = Hook(
    "export_sections",
    "Run with member= by the GDPR export; each receiver returns (section_name, data) with "
    "everything its app holds about the member (e.g. ('points', {...})).",
)
