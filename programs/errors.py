from membership_site.errors import ConflictError, InvalidInputError, NotFoundError


class ProgramCodeTakenError(ConflictError):
    code = "program_code_taken"
    title = "A program with this code already exists"


class LocationCodeTakenError(ConflictError):
    code = "location_code_taken"
    title = "A location with this code already exists in the program"


class LocationNotFoundError(NotFoundError):
    code = "location_not_found"
    title = "No such location in this program"


class InvalidTimezoneError(InvalidInputError):
    code = "invalid_timezone"
    title = "Unknown time zone"


class InvalidCurrencyError(InvalidInputError):
    code = "invalid_currency"
    title = "Unknown ISO 4217 currency code"
