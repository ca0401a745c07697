"""Domain errors of earning (each is a problem details ``code``). Errors shared with the
ledger (``duplicate_reference``, ``unknown_location``, ``member_suspended``, ...) come from
``points.errors``."""

from membership_site.errors import ConflictError, InvalidInputError, NotFoundError


class PurchaseNotFoundError(NotFoundError):
    code = "purchase_not_found"
    title = "No such purchase in this program"


class CurrencyMismatchError(InvalidInputError):
    code = "currency_mismatch"
    title = "Purchases are in the program's money currency"


class InvalidAmountError(InvalidInputError):
    code = "invalid_amount"
    title = "The money amount is not valid for the program's currency"


class AmountsInconsistentError(InvalidInputError):
    code = "amounts_inconsistent"
    title = "The amounts do not add up"


class UnknownLineError(InvalidInputError):
    code = "unknown_line"
    title = "The purchase has no line with this number"


class RefundExceedsPurchaseError(ConflictError):
    code = "refund_exceeds_purchase"
    title = "More than what remains of the purchase"


class PurchaseFullyRefundedError(ConflictError):
    code = "purchase_fully_refunded"
    title = "The purchase was already refunded in full"


class InvalidRuleError(InvalidInputError):
    code = "invalid_rule"
    title = "The rule or campaign is not valid"


class RuleNotFoundError(NotFoundError):
    code = "earning_rule_not_found"
    title = "No such earning rule in this program"


class CampaignNotFoundError(NotFoundError):
    code = "campaign_not_found"
    title = "No such campaign in this program"


class RuleCodeTakenError(ConflictError):
    code = "rule_code_taken"
    title = "An earning rule or campaign with this code already exists in the program"


class RuleInUseError(ConflictError):
    code = "rule_in_use"
    title = "Points were already awarded by it; deactivate it instead of deleting it"


class InvalidEarningSettingsError(InvalidInputError):
    code = "invalid_earning_settings"
    title = "The earning settings are not valid"


class UnknownReferralCodeError(InvalidInputError):
    code = "unknown_referral_code"
    title = "No member of this program has this referral code"


class SelfReferralError(InvalidInputError):
    code = "self_referral"
    title = "A member cannot refer themself"


class AlreadyReferredError(ConflictError):
    code = "already_referred"
    title = "The member was already referred"


class ReferralTooLateError(ConflictError):
    code = "referral_too_late"
    title = "A referral must be recorded before the member's first purchase"
