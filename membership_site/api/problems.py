"""RFC 9457 problem details for every error the API returns.

One exception handler maps domain errors (``DomainError``), DRF's exceptions and Django's
into ``application/problem+json`` bodies with ``type``, ``title``, ``status``, ``detail``,
a stable ``code`` and, for validation, ``errors: [{field, code, message}]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings

from membership_site.errors import DomainError, InvalidInputError

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Problem types are relative URI references; the README lists every code.
PROBLEM_TYPE_PREFIX = "/api/problems/"

# DRF's own codes, renamed where ours say more to a client.
_DRF_CODES = {
    "parse_error": "malformed_body",
    "throttled": "rate_limited",
    "invalid": "validation_error",
}


def problem_body(
    *,
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_PREFIX}{code}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or title or HTTPStatus(status).phrase,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(
    *, status: int, code: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> Response:
    """A DRF response with a problem body (for use inside API views)."""
    return Response(
        problem_body(status=status, code=code, **kwargs),
        status=status,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def problem_http_response(
    *, status: int, code: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> HttpResponse:
    """A plain Django response with a problem body (for middleware and URL handlers)."""
    response = HttpResponse(
        json.dumps(problem_body(status=status, code=code, **kwargs)),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_errors(detail: Any, prefix: str = "") -> Iterator[dict[str, Any]]:
    """Turn DRF's nested error structure into ``[{field, code, message}]``.

    Nested fields are dotted (``lines.2.sku``); errors about the whole object have
    ``field: null``.
    """
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                yield from flatten_errors(value, prefix)
            else:
                yield from flatten_errors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                yield from flatten_errors(item, f"{prefix}.{index}" if prefix else str(index))
            else:
                yield from flatten_errors(item, prefix)
    else:
        yield {
            "field": prefix or None,
            "code": getattr(detail, "code", None) or "invalid",
            "message": str(detail),
        }


def _from_api_exception(exc: drf_exceptions.APIException) -> Response:
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(math.ceil(exc.wait))

    if isinstance(exc, drf_exceptions.ValidationError):
        errors = list(flatten_errors(exc.detail))
        return problem_response(
            status=400,
            code="validation_error",
            title="The request has invalid fields",
            detail="; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors),
            errors=errors,
            headers=headers,
        )

    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    code = _DRF_CODES.get(code, code)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
    return problem_response(
        status=exc.status_code,
        code=code,
        title=HTTPStatus(exc.status_code).phrase,
        detail=str(detail),
        headers=headers,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: any known error becomes a problem response.

    Unknown exceptions return None, so DRF re-raises them and ``ApiProblemMiddleware``
    logs them and answers a 500 problem.
    """
    if isinstance(exc, DomainError):
        errors = None
        if exc.field is not None or isinstance(exc, InvalidInputError):
            errors = [{"field": exc.field, "code": exc.code, "message": exc.detail}]
        return problem_response(
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            errors=errors,
            **exc.extra,
        )
    if isinstance(exc, RequestDataTooBig):
        return problem_response(
            status=413,
            code="payload_too_large",
            detail="The request body is larger than this API accepts.",
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        return _from_api_exception(exc)
    return None
