"""Domain errors of the points ledger (each is a problem details ``code``)."""

from membership_site.errors import ConflictError, DomainError, InvalidInputError, NotFoundError


class CurrencyNotFoundError(NotFoundError):
    code = "currency_not_found"
    title = "No such points currency in this program"


class UnknownCurrencyError(InvalidInputError):
    code = "unknown_currency"
    title = "No points currency with this code in the program"


class CurrencyCodeTakenError(ConflictError):
    code = "currency_code_taken"
    title = "A currency with this code already exists in the program"


class InvalidExpiryPolicyError(InvalidInputError):
    code = "invalid_expiry_policy"
    title = "The expiry policy settings do not fit together"


class NegativeBalancesExistError(ConflictError):
    code = "negative_balances_exist"
    title = "Some accounts have a negative balance; negative balances cannot be switched off"


class CurrencyInactiveError(ConflictError):
    code = "currency_inactive"
    title = "The points currency is not active"


class MemberNotActiveError(ConflictError):
    code = "member_not_active"
    title = "The member is not active yet"


class MemberSuspendedError(ConflictError):
    code = "member_suspended"
    title = "The member is suspended: points cannot be redeemed, held or transferred out"


class MemberTerminatedError(ConflictError):
    code = "member_terminated"
    title = "The membership is terminated: no points operation is possible"


class InsufficientPointsError(ConflictError):
    code = "insufficient_points"
    title = "Not enough available points"


class BelowMinimumRedemptionError(DomainError):
    code = "below_minimum_redemption"
    status = 422
    title = "Fewer points than the currency's minimum redemption"


class DuplicateReferenceError(ConflictError):
    code = "duplicate_reference"
    title = "This reference was already used for a different operation"


class TransactionNotFoundError(NotFoundError):
    code = "transaction_not_found"
    title = "No such transaction in this program"


class NotReversibleError(ConflictError):
    code = "not_reversible"
    title = "This kind of transaction cannot be reversed"


class ReversalExceedsRemainingError(ConflictError):
    code = "reversal_exceeds_remaining"
    title = "More points than remain reversible on this transaction"


class HoldNotFoundError(NotFoundError):
    code = "hold_not_found"
    title = "No such hold in this program"


class HoldNotActiveError(ConflictError):
    code = "hold_not_active"
    title = "The hold was already captured, released or has expired"


class CaptureExceedsHoldError(InvalidInputError):
    code = "capture_exceeds_hold"
    title = "The capture is larger than the hold"


class TransferToSelfError(InvalidInputError):
    code = "transfer_to_self"
    title = "A member cannot transfer points to themself"


class RecipientNotFoundError(InvalidInputError):
    code = "recipient_not_found"
    title = "No such recipient in this program"


class InvalidDurationError(InvalidInputError):
    code = "invalid_duration"
    title = "Durations are a number followed by d, w, m or y, e.g. 90d"


class UnknownLocationError(InvalidInputError):
    code = "unknown_location"
    title = "No location with this code in the program"
