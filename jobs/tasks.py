"""Celery tasks of the jobs app, sent to the ``jobs`` queue (``QUEUE``); each periodic
one has a management command too."""

from celery import shared_task

from . import engine, services

QUEUE = "jobs"


@shared_task(name="jobs.run", acks_late=True, reject_on_worker_lost=True)
def job_run(job_id: int) -> None:
    """Run or resume a job. Redelivered after a worker crash, it carries on after the
    last committed chunk."""
    engine.run(job_id)


@shared_task(name="jobs.requeue_stale")
def jobs_requeue_stale() -> list[int]:
    """Re-queue jobs whose worker died (``manage.py jobs_requeue_stale``)."""
    return services.jobs_requeue_stale()


@shared_task(name="jobs.purge")
def jobs_purge() -> int:
    """Delete expired job files and reports (``manage.py jobs_purge``)."""
    return services.jobs_purge()
