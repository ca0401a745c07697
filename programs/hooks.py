"""Hooks run by the programs services (see membership_site.hooks)."""

from membership_site.hooks import Hook

program_created = Hook(
    "program_created",
    "Run with program= and actor= inside program_create's transaction; higher apps set up "
    "their defaults for the new program (e.g. the default points currency).",
)
