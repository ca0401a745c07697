"""Reads of jobs, always within one program."""

from __future__ import annotations

from django.db.models import QuerySet

from .errors import JobNotFoundError
from .models import Job


def job_list(*, program_id: int) -> QuerySet[Job]:
    return Job.objects.filter(program_id=program_id)


def job_get(*, program_id: int, job_id: int | str) -> Job:
    try:
        return Job.objects.get(program_id=program_id, pk=int(job_id))
    except (Job.DoesNotExist, ValueError, TypeError):
        raise JobNotFoundError(f"No job {job_id} in this program.") from None
