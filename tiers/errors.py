from membership_site.errors import ConflictError, InvalidInputError, NotFoundError


class TierNotFoundError(NotFoundError):
    code = "tier_not_found"
    title = "No such tier in this program"


class UnknownTierError(InvalidInputError):
    """A tier code given in a request body that the program does not have."""

    code = "unknown_tier"
    title = "The program has no tier with this code"


class InvalidTierError(InvalidInputError):
    code = "invalid_tier"
    title = "The tier definition is not valid"


class TierCodeTakenError(ConflictError):
    code = "tier_code_taken"
    title = "A tier with this code already exists in the program"


class TierRankTakenError(ConflictError):
    code = "tier_rank_taken"
    title = "Another tier of the program has this rank"


class DefaultTierRequiredError(ConflictError):
    code = "default_tier_required"
    title = "The program must keep a default tier; make another tier the default instead"


class TierInUseError(ConflictError):
    code = "tier_in_use"
    title = "Members hold this tier or its history mentions it; it cannot be deleted"


class InvalidActivityError(InvalidInputError):
    code = "invalid_activity"
    title = "The qualifying activity is not valid"


class ActivityReferenceConflictError(ConflictError):
    code = "activity_reference_conflict"
    title = "This activity reference was already recorded with other values"


class TierAssignmentError(InvalidInputError):
    code = "invalid_tier_assignment"
    title = "The tier assignment is not valid"


class MemberTerminatedError(ConflictError):
    code = "member_terminated"
    title = "The membership is terminated; its tier cannot change"


class EvaluationRunningError(ConflictError):
    code = "tier_evaluation_running"
    title = "An evaluation of this program is already running"
