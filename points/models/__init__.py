"""Models of the points app, by area: the ledger (``ledger``), earning configuration
(``rules``: settings, earning rules, campaigns), purchases and refunds (``purchases``) and
event bonuses and referrals (``bonuses``). Import them from here: ``from points.models
import Purchase``."""

from .bonuses import BonusAward, Referral, ReferralCode
from .ledger import Account, Currency, Entry, ExpiryWarning, Hold, Lot, LotMovement, Transaction
from .purchases import (
    PointsAward,
    Purchase,
    PurchaseEarning,
    PurchaseLine,
    Refund,
    RefundEarning,
    RefundLine,
)
from .rules import Campaign, EarningRule, EarningSettings, RuleBase

__all__ = [
    "Account",
    "BonusAward",
    "Campaign",
    "Currency",
    "EarningRule",
    "EarningSettings",
    "Entry",
    "ExpiryWarning",
    "Hold",
    "Lot",
    "LotMovement",
    "PointsAward",
    "Purchase",
    "PurchaseEarning",
    "PurchaseLine",
    "Referral",
    "ReferralCode",
    "Refund",
    "RefundEarning",
    "RefundLine",
    "RuleBase",
    "Transaction",
]
