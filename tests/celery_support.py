"""A real Celery worker for tests about asynchronous behaviour.

``celery_worker`` starts ``celery worker`` as a separate process, with a Redis broker
and the test database, and switches this process's Celery app from eager mode to that
broker for the test. Tests using it need committed data (``transaction=True`` or the
``transactional_db`` fixture, which the fixture requests).

Each use gets its own Redis key prefix (Celery's ``global_keyprefix``), so parallel
runs sharing one Redis server do not steal each other's tasks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from django.db import connection
from kombu import pools as kombu_pools

from membership_site.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
ALL_QUEUES = ("default", "webhooks", "jobs")


def broker_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


class CeleryWorker:
    """A ``celery worker`` process; ``kill()`` / ``start()`` simulate a crash and restart."""

    def __init__(self, queues: tuple[str, ...], extra_env: dict[str, str], key_prefix: str) -> None:
        self.queues = queues
        self.key_prefix = key_prefix
        self.extra_env = extra_env
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="celery-worker-", suffix=".log")[1])

    def start(self, timeout: float = 30) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": broker_url(),
            "CELERY_REDIS_KEY_PREFIX": self.key_prefix,
            "DATABASE_CONN_MAX_AGE": "0",
            **self.extra_env,
        }
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "membership_site",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-Q",
                ",".join(self.queues),
                "-n",
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Celery worker exited at start:\n{self.output()}")
            if " ready." in self.output():
                return
            time.sleep(0.1)
        raise RuntimeError(f"Celery worker not ready after {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        """Kill the worker without letting it finish its task (like a crashed host)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log_file", None):
            self._log_file.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(condition: Callable[[], object], timeout: float = 60, interval: float = 0.1, message: str = ""):
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``
    (generous: a loaded two-core machine can take many seconds to schedule a worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(message or f"Condition not met within {timeout}s")


def _reset_broker_connections() -> None:
    # The app caches connections to the broker it first used; drop them when it changes.
    # kombu keeps its pools in global groups keyed by connection: closing the app's pool
    # alone left the closed pool there, and the next eager task's producer ("Acquire on
    # closed pool") failed. kombu.pools.reset closes every pool and empties the groups.
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def celery_worker(transactional_db, request):
    """Start a real worker on all queues (``@pytest.mark.celery_queues(...)`` narrows them;
    ``@pytest.mark.celery_env(NAME=value)`` adds environment variables)."""
    queues_marker = request.node.get_closest_marker("celery_queues")
    env_marker = request.node.get_closest_marker("celery_env")
    queues = tuple(queues_marker.args) if queues_marker else ALL_QUEUES
    extra_env = {k: str(v) for k, v in (env_marker.kwargs if env_marker else {}).items()}

    url = broker_url()
    key_prefix = f"test-{uuid.uuid4().hex[:12]}-"
    previous = {
        "broker_url": celery_app.conf.broker_url,
        "task_always_eager": celery_app.conf.task_always_eager,
        "broker_transport_options": celery_app.conf.broker_transport_options,
    }
    celery_app.conf.update(
        broker_url=url,
        task_always_eager=False,
        broker_transport_options={"global_keyprefix": key_prefix},
    )
    _reset_broker_connections()
    worker = CeleryWorker(queues, extra_env, key_prefix)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        celery_app.conf.update(**previous)
        _reset_broker_connections()
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"{key_prefix}*"):
            client.delete(key)
        if request.session.testsfailed:
            print(f"Celery worker log: {worker.log}")
