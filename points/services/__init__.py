"""Writes of the points ledger: currencies, earn, redeem, adjust, transfer, reverse and
holds. Each service is one database transaction that also writes its event(s).

Every member-facing service returns a ``PointsResult``: the transaction, the member's
account with its balances after it, and ``created=False`` when a repeated ``reference``
returned the original instead of writing a second transaction.

Lock order (everyone keeps it, so nothing deadlocks): a caller's own rows first (e.g. the
tier row that ``tiers.services.activity_record`` locks in a purchase), then the members'
points accounts in id order, then the members' event counters (taken when the events are
written, at the end). A purchase service therefore records tier activity *before* calling
``points_earn`` / ``points_reverse`` in the same transaction; the earning code
(``points.earning.qualifying.lock_members``) takes the tier rows and the accounts up front,
so that an upgrade's ``tier.changed`` (an event counter) never comes before an account lock.
"""

from .common import MAX_POINTS, REVERSIBLE_KINDS, PointsResult, check_member
from .currencies import (
    CURRENCY_FIELDS,
    currency_check_policy,
    currency_create,
    currency_update,
    program_default_currency,
)
from .holds import hold_capture, hold_create, hold_release
from .transactions import (
    Credit,
    credit_batchable,
    points_adjust,
    points_adjust_credits,
    points_earn,
    points_redeem,
    points_reverse,
    points_transfer,
    reversible_amount,
)

__all__ = [
    "CURRENCY_FIELDS",
    "MAX_POINTS",
    "REVERSIBLE_KINDS",
    "Credit",
    "PointsResult",
    "check_member",
    "credit_batchable",
    "currency_check_policy",
    "currency_create",
    "currency_update",
    "hold_capture",
    "hold_create",
    "hold_release",
    "points_adjust",
    "points_adjust_credits",
    "points_earn",
    "points_redeem",
    "points_reverse",
    "points_transfer",
    "program_default_currency",
    "reversible_amount",
]
