"""The base of every domain error.

Each app's ``errors.py`` subclasses ``DomainError`` with a stable snake_case ``code`` and
an HTTP ``status``; the API's exception handler turns any of them into a problem details
response, adding ``extra`` as members of the problem object (e.g. ``available``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """``field`` (optional) names the input field at fault; the problem body then carries
    ``errors: [{field, code, message}]`` as validation errors do."""

    code: ClassVar[str] = "domain_error"
    status: ClassVar[int] = 422
    title: ClassVar[str] = "The request cannot be carried out"

    def __init__(self, detail: str | None = None, *, field: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.field = field
        self.extra = extra
        super().__init__(self.detail)


class NotFoundError(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"


class ConflictError(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict with the current state"


class InvalidInputError(DomainError):
    """Input that passed the serializer but breaks a domain rule about a field."""

    code = "invalid"
    status = 400
    title = "Invalid input"
