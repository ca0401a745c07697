from membership_site.errors import ConflictError, DomainError, InvalidInputError, NotFoundError


class MemberNotFoundError(NotFoundError):
    code = "member_not_found"
    title = "No such member in this program"


class LabelNotFoundError(NotFoundError):
    code = "label_not_found"
    title = "No such label in this program"


class CardNotFoundError(NotFoundError):
    code = "card_not_found"
    title = "No such card in this program"


class UnknownLabelError(InvalidInputError):
    code = "unknown_label"
    title = "No label with this code in the program"


class InvalidPhoneError(InvalidInputError):
    code = "invalid_phone"
    title = "Not a valid phone number"


class InvalidEmailError(InvalidInputError):
    code = "invalid_email"
    title = "Not a valid e-mail address"


class InvalidBirthDateError(InvalidInputError):
    code = "invalid_birth_date"
    title = "Not a plausible birth date"


class InvalidMemberNumberError(InvalidInputError):
    code = "invalid_member_number"
    title = "Member numbers are 6 to 20 digits"


class DuplicateMemberError(ConflictError):
    """Another member of the program already has this email, phone, number or reference."""

    code = "duplicate_member"
    title = "Another member already has this value"


class LabelCodeTakenError(ConflictError):
    code = "label_code_taken"
    title = "A label with this code already exists in the program"


class CardNumberTakenError(ConflictError):
    code = "card_number_taken"
    title = "A card with this number already exists in the program"


class IllegalStatusTransitionError(ConflictError):
    code = "illegal_status_transition"
    title = "The member cannot move to that status from its current one"


class MemberTerminatedError(ConflictError):
    code = "member_terminated"
    title = "The membership is terminated; nothing can be changed"


class MemberErasedError(ConflictError):
    code = "member_erased"
    title = "The member's personal data has been erased"


class CardNotActiveError(ConflictError):
    code = "card_not_active"
    title = "The card is blocked or replaced"


class CardNotUsableError(DomainError):
    """The card resolves to a member but cannot be used for a new transaction."""

    code = "card_not_usable"
    status = 422
    title = "This card is blocked or has been replaced"


class LookupCriteriaError(InvalidInputError):
    code = "lookup_criteria"
    title = "Give exactly one of card, phone, email or number"
