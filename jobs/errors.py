from membership_site.errors import ConflictError, DomainError, InvalidInputError, NotFoundError


class JobNotFoundError(NotFoundError):
    code = "job_not_found"
    title = "No such job in this program"


class UnknownJobKindError(NotFoundError):
    code = "unknown_job_kind"
    title = "No import or export of this kind"


class JobFinishedError(ConflictError):
    code = "job_finished"
    title = "The job has already finished"


class JobNotFinishedError(ConflictError):
    code = "job_not_finished"
    title = "The job has not finished yet"


class JobFileMissingError(NotFoundError):
    code = "job_file_missing"
    title = "This job has no result file"


class JobFileExpiredError(DomainError):
    code = "job_file_expired"
    status = 410
    title = "The job's files and report are past their retention and were deleted"


class FileUnreadableError(InvalidInputError):
    """The upload as a whole cannot be read (encoding, format, header). ``code`` is one of
    bad_encoding, malformed_file, empty_file, missing_column, unknown_column."""

    code = "malformed_file"
    title = "The file cannot be read"

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, field: str | None = "file", **extra
    ):
        if code:
            self.code = code
        super().__init__(detail, field=field, **extra)
