"""``Idempotency-Key`` for every POST under /api/.

- Same key, same request: the stored status and body are replayed
  (with ``Idempotent-Replayed: true``).
- Same key, different request (method, path or body): 422 ``idempotency_key_reused``.
- Same key while the first request is still running: 409 ``idempotency_key_in_use``.

The key is claimed (committed) before the view runs; the view then runs in one database
transaction that also stores its response, so a crash leaves neither the domain writes
nor a stored response, and the claim can be retried once it is stale. Keys are scoped per
integration and kept ``IDEMPOTENCY_KEY_TTL_HOURS`` (at least 24 hours).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from integrations.models import IdempotencyRecord
from membership_site.errors import ConflictError, DomainError, InvalidInputError

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
_STORED_HEADERS = ("Location",)


class IdempotencyKeyReusedError(DomainError):
    code = "idempotency_key_reused"
    status = 422
    title = "This Idempotency-Key was used for a different request"


class IdempotencyKeyInUseError(ConflictError):
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is still being processed"


class InvalidIdempotencyKeyError(InvalidInputError):
    code = "invalid_idempotency_key"
    title = "The Idempotency-Key header must be 1 to 255 printable ASCII characters"


@dataclass(frozen=True)
class Claim:
    record_id: int


def _fingerprint(request) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.get_full_path()}\n".encode())
    data = request.data
    if hasattr(data, "lists"):  # form data: a QueryDict
        data = sorted((key, values) for key, values in data.lists() if key not in request.FILES)
    digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    for name in sorted(request.FILES):
        for upload in request.FILES.getlist(name):
            digest.update(f"\n{name}:{upload.name}:".encode())
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> HttpResponse:
    headers = dict(record.response_headers)
    response = HttpResponse(
        bytes(record.response_body or b""),
        status=record.response_status,
        content_type=headers.pop("Content-Type", "application/json"),
    )
    for name, value in headers.items():
        response[name] = value
    response[REPLAY_HEADER] = "true"
    return response


def claim(request) -> Claim | HttpResponse | None:
    """Claim the request's key; a finished earlier request's response is returned for
    replay; None when the request carries no key (or is not a POST)."""
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None:
        return None
    if not key or len(key) > 255 or not key.isascii() or not key.isprintable():
        raise InvalidIdempotencyKeyError(field=HEADER)
    integration_id = request.auth.integration.pk
    fingerprint = _fingerprint(request)
    now = timezone.now()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    integration_id=integration_id,
                    key=key,
                    fingerprint=fingerprint,
                    method=request.method,
                    path=request.path[:500],
                    created_at=now,
                    expires_at=now + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
                )
            return Claim(record.pk)
        except IntegrityError:
            pass
        record = IdempotencyRecord.objects.filter(integration_id=integration_id, key=key).first()
        if record is None:  # released by a failed first attempt in the meantime
            continue
        if record.expires_at <= now:
            IdempotencyRecord.objects.filter(pk=record.pk, expires_at__lte=now).delete()
            continue
        if record.fingerprint != fingerprint:
            raise IdempotencyKeyReusedError(
                f"Key '{key}' was first used for {record.method} {record.path} with another body."
            )
        if record.state == IdempotencyRecord.State.COMPLETED:
            return _replay(record)
        stale_before = now - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS)
        # A claim that has been "running" for too long belongs to a request that died
        # (its transaction rolled back with it): take it over, once, atomically.
        if record.created_at < stale_before and IdempotencyRecord.objects.filter(
            pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS, created_at=record.created_at
        ).update(created_at=now):
            return Claim(record.pk)
        raise IdempotencyKeyInUseError(
            f"A request with key '{key}' is still being processed; retry after it finishes."
        )
    raise IdempotencyKeyInUseError(f"The key '{key}' is contended; retry.")


def complete(claim_: Claim, response) -> None:
    """Store the response to replay; called inside the view's transaction."""
    if isinstance(response, Response) and not response.is_rendered:
        body = JSONRenderer().render(response.data)
        content_type = response.content_type or "application/json"
    else:
        body = response.content
        content_type = response["Content-Type"]
    headers = {name: response[name] for name in _STORED_HEADERS if response.has_header(name)}
    headers["Content-Type"] = content_type
    IdempotencyRecord.objects.filter(pk=claim_.record_id).update(
        state=IdempotencyRecord.State.COMPLETED,
        response_status=response.status_code,
        response_body=body,
        response_headers=headers,
    )


def release(claim_: Claim) -> None:
    """Forget a claim whose request failed with a server error, so a retry can run."""
    IdempotencyRecord.objects.filter(pk=claim_.record_id, state=IdempotencyRecord.State.IN_PROGRESS).delete()


def purge_expired() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
