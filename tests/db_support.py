"""What concurrency tests share about the database: waiting until another connection of
this test's database is blocked on a lock (a transaction the test holds open)."""

from __future__ import annotations

from django.db import connection

from tests.celery_support import wait_for


def wait_for_lock_waiter(message: str, *, timeout: float = 30) -> None:
    """Return once some backend of this database waits for a lock; fail the test with
    ``message`` after ``timeout`` seconds. Works inside an open transaction too:
    ``pg_stat_activity`` is a snapshot kept for the transaction, dropped before each look."""

    def waiting() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return bool(cursor.fetchone()[0])

    wait_for(waiting, timeout=timeout, interval=0.05, message=message)
