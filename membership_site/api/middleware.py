"""Request id, access log, body-size limit and problem details for errors under /api/."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from membership_site.actors import reset_current_actor, set_current_actor

from .problems import PROBLEM_CONTENT_TYPE, problem_http_response

logger = logging.getLogger("api.request")
error_logger = logging.getLogger("api.error")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
API_PREFIX = "/api/"
LOGGED_PREFIXES = ("/api/", "/o/")


def current_request_id() -> str:
    return _request_id.get()


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` to every log record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


class RequestIdMiddleware:
    """Gives every request an id (the client's ``X-Request-ID`` when well-formed), returns
    it in ``X-Request-ID`` and writes one access line per API request: integration,
    method, path, status and duration. Never bodies, headers or query strings (they can
    hold secrets or personal data)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        # Each request starts with no actor; API authentication sets its integration.
        actor_token = set_current_actor(None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if request.path.startswith(LOGGED_PREFIXES):
                duration_ms = (time.perf_counter() - started) * 1000
                logger.info(
                    "%s %s %s %.1fms integration=%s",
                    request.method,
                    request.path,
                    response.status_code,
                    duration_ms,
                    getattr(request, "api_integration_id", None) or "-",
                    extra={
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "duration_ms": round(duration_ms, 1),
                        "integration_id": getattr(request, "api_integration_id", None),
                    },
                )
            return response
        finally:
            _request_id.reset(token)
            reset_current_actor(actor_token)


class ApiBodySizeMiddleware:
    """Answers 413 before reading a body that is larger than the API accepts."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_request(request):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            is_upload = request.content_type == "multipart/form-data"
            limit = settings.API_MAX_UPLOAD_BYTES if is_upload else settings.API_MAX_BODY_BYTES
            if length > limit:
                return problem_http_response(
                    status=413,
                    code="payload_too_large",
                    detail=f"The request body is {length} bytes; the limit is {limit} bytes.",
                )
        return self.get_response(request)


class ApiProblemMiddleware:
    """Makes every 4xx/5xx under /api/ a problem details response.

    DRF views already answer with problems; this covers what happens outside them:
    unhandled exceptions (logged, then a 500 problem that reveals nothing) and plain
    Django error responses.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            is_api_request(request)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
            and not getattr(response, "streaming", False)
        ):
            return self._as_problem(response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_request(request):
            return None
        error_logger.exception("Unhandled error in %s %s", request.method, request.path)
        return problem_http_response(
            status=500,
            code="internal_error",
            detail=(
                "The server failed to handle the request. Quote the X-Request-ID "
                f"({current_request_id()}) when reporting it."
            ),
        )

    @staticmethod
    def _as_problem(response: HttpResponse) -> HttpResponse:
        detail = None
        if response.get("Content-Type", "").startswith("application/json"):
            try:
                detail = json.loads(response.content).get("detail")
            except (ValueError, AttributeError):
                detail = None
        codes = {404: "not_found", 405: "method_not_allowed", 403: "permission_denied"}
        code = codes.get(
            response.status_code, "internal_error" if response.status_code >= 500 else "bad_request"
        )
        headers = {
            name: response[name]
            for name in ("Allow", "Retry-After", "WWW-Authenticate")
            if response.has_header(name)
        }
        return problem_http_response(status=response.status_code, code=code, detail=detail, headers=headers)
