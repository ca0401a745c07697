"""Domain errors of the rewards app (each is a problem details ``code``)."""

from membership_site.errors import ConflictError, DomainError, InvalidInputError, NotFoundError


class RewardNotFoundError(NotFoundError):
    code = "reward_not_found"
    title = "No such reward in this program"


class RewardCodeTakenError(ConflictError):
    code = "reward_code_taken"
    title = "A reward with this code already exists in the program"


class InvalidRewardError(InvalidInputError):
    code = "invalid_reward"
    title = "The reward definition is not valid"


class RewardInactiveError(ConflictError):
    code = "reward_inactive"
    title = "The reward is switched off"


class RewardNotAvailableError(ConflictError):
    """Outside its validity dates; ``reason`` is ``not_yet_valid`` or ``expired``."""

    code = "reward_not_available"
    title = "The reward cannot be redeemed at this time"


class NotEligibleError(DomainError):
    """``reasons`` lists ``not_eligible_tier`` and/or ``not_eligible_label``."""

    code = "not_eligible"
    status = 422
    title = "The member is not eligible for this reward"


class MemberLimitReachedError(ConflictError):
    code = "member_limit_reached"
    title = "The member has redeemed this reward as often as allowed"


class OutOfStockError(ConflictError):
    code = "out_of_stock"
    title = "The reward is out of stock"


class CurrencyNotAcceptedError(InvalidInputError):
    code = "currency_not_accepted"
    title = "The reward cannot be paid in this points currency"


class AddressRequiredError(InvalidInputError):
    code = "address_required"
    title = "A physical reward needs a shipping address"


class DuplicateRedemptionReferenceError(ConflictError):
    code = "duplicate_reference"
    title = "This reference was already used for another redemption"


class RedemptionNotFoundError(NotFoundError):
    code = "redemption_not_found"
    title = "No such redemption in this program"


class RedemptionNotCancellableError(ConflictError):
    code = "redemption_not_cancellable"
    title = "The redemption was already cancelled or its reward was used or shipped"


class VoucherNotFoundError(NotFoundError):
    code = "voucher_not_found"
    title = "No such voucher in this program"


class VoucherNotUsableError(ConflictError):
    """``reasons`` says why (``used``, ``expired``, ``below_min_spend``...)."""

    code = "voucher_not_usable"
    title = "The voucher cannot be used"


class VoucherNotCancellableError(ConflictError):
    code = "voucher_not_cancellable"
    title = "Only an issued (unused) voucher can be cancelled"


class PayWithPointsDisabledError(ConflictError):
    code = "pay_with_points_disabled"
    title = "This points currency cannot pay bills"


class PayRuleNotFoundError(NotFoundError):
    code = "pay_rule_not_found"
    title = "This points currency has no pay-with-points rule"


class PayWithPointsRuleError(DomainError):
    """A pay-with-points rule refuses the payment; ``code`` says which."""

    status = 422


class BelowMinimumPointsError(PayWithPointsRuleError):
    code = "below_minimum_points"
    title = "Fewer points than the currency's minimum for paying a bill"


class NotAMultipleOfStepError(PayWithPointsRuleError):
    code = "not_a_multiple_of_step"
    title = "Points pay bills in multiples of the currency's step"


class ExceedsBillShareError(PayWithPointsRuleError):
    code = "exceeds_bill_share"
    title = "More than the share of the bill that points may pay"


class BelowMinimumBillError(PayWithPointsRuleError):
    code = "below_minimum_bill"
    title = "The bill is below the minimum for paying with points"


class InvalidPricingError(InvalidInputError):
    code = "invalid_pricing"
    title = "The pricing exception is not valid"


class InvalidVoucherBatchError(InvalidInputError):
    code = "invalid_voucher_batch"
    title = "The voucher batch is not valid"
