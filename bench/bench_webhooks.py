"""Benchmark: recording events in bulk (imports) and reading the event stream.

Measures, on a throwaway PostgreSQL database (test_<DATABASE_URL name>_bench_webhooks):
- event_record_many for 1,000 member events in one call, against the baseline of 1,000
  event_record calls in one transaction (what an import would do without the bulk writer);
- reading 10,000 events through event_stream in pages of 100.
Prints each result with its baseline and ratio, and writes bench/results/webhooks.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "membership_site.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

ROWS = 1000
STREAM_EVENTS = 10_000


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def timed_rolled_back(fn) -> float:
    """The write alone: rolled back, so the after-commit dispatch does not run."""
    with transaction.atomic():
        elapsed = timed(fn)
        transaction.set_rollback(True)
    return elapsed


def main() -> None:
    from webhooks import selectors, services
    from webhooks.models import Event

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"test_{old_name}_bench_webhooks"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        program_id = 1

        def one_by_one():
            for n in range(ROWS):
                services.event_record(
                    program_id=program_id, member_id=n + 1, type="member.created", data={"n": n}
                )

        def bulk():
            services.event_record_many(
                events=[
                    services.EventInput(program_id, "member.created", {"n": n}, member_id=ROWS + n + 1)
                    for n in range(ROWS)
                ]
            )

        baseline = min(timed_rolled_back(one_by_one) for _ in range(3))
        bulk_time = min(timed_rolled_back(bulk) for _ in range(3))

        for _chunk in range(STREAM_EVENTS // ROWS):
            services.event_record_many(
                events=[
                    services.EventInput(2, "member.updated", {}, member_id=n % 500 + 1) for n in range(ROWS)
                ]
            )

        # Transactions elsewhere on the server hold the stream's horizon back a moment.
        deadline = time.monotonic() + 120
        while len(selectors.event_stream(program_id=2, limit=STREAM_EVENTS)) < STREAM_EVENTS:
            if time.monotonic() > deadline:
                raise SystemExit("The stream did not catch up within 120 s (a long transaction is running).")
            time.sleep(0.2)

        def read_stream():
            after, seen = None, 0
            while True:
                page = selectors.event_stream(program_id=2, after=after, limit=100)
                if not page:
                    break
                seen += len(page)
                after = selectors.StreamPosition.of(page[-1])
            assert seen == STREAM_EVENTS, seen

        def read_by_id():
            # Baseline: naive id paging, without the visibility horizon (unsafe under
            # concurrent writers, but the cheapest possible read).
            last, seen = 0, 0
            while True:
                page = list(Event.objects.filter(program_id=2, id__gt=last).order_by("id")[:100])
                if not page:
                    break
                seen += len(page)
                last = page[-1].pk
            assert seen == STREAM_EVENTS, seen

        stream_time = min(timed(read_stream) for _ in range(3))
        naive_time = min(timed(read_by_id) for _ in range(3))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    results = {
        "event_record_many_1000_s": round(bulk_time, 4),
        "event_record_x1000_baseline_s": round(baseline, 4),
        "bulk_speedup": round(baseline / bulk_time, 1),
        "stream_read_10000_s": round(stream_time, 4),
        "stream_events_per_s": round(STREAM_EVENTS / stream_time),
        "naive_id_paging_10000_s": round(naive_time, 4),
        "stream_cost_ratio": round(stream_time / naive_time, 2),
    }
    print(f"event_record_many, {ROWS} events:  {bulk_time * 1000:8.1f} ms")
    print(f"baseline: {ROWS} x event_record:   {baseline * 1000:8.1f} ms")
    print(f"ratio: bulk is {baseline / bulk_time:.1f}x faster than the baseline")
    print(f"stream read of {STREAM_EVENTS} events (pages of 100): {stream_time * 1000:8.1f} ms")
    print(f"baseline: naive id paging of the same events:  {naive_time * 1000:8.1f} ms")
    print(f"ratio: the transaction-safe stream costs {stream_time / naive_time:.2f}x the naive read")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "webhooks.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
