"""What the benchmark scripts share: their own throwaway database on the server of
DATABASE_URL, and running work on several threads with per-item latencies."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import psycopg


def server_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loyalty")


def recreate_database(name: str) -> str:
    """Drop and create database ``name`` on the server of DATABASE_URL; returns its URL."""
    parsed = urlparse(server_url())
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return parsed._replace(path=f"/{name}").geturl()


def run_threads(work: Callable[[Any], object], items: Sequence, threads: int) -> tuple[float, list[float]]:
    """Run ``work(item)`` for every item on ``threads`` threads started together; returns
    the wall time and each call's latency in seconds. Each thread closes its own database
    connection when done."""
    from django.db import connection

    latencies: list[float] = []
    lock = threading.Lock()
    chunks = [items[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads)

    def worker(chunk):
        mine = []
        try:
            barrier.wait()
            for item in chunk:
                started = time.perf_counter()
                work(item)
                mine.append(time.perf_counter() - started)
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    workers = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return time.perf_counter() - started, latencies


def percentile_ms(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)] * 1000
