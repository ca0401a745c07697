"""Benchmark: reward redemptions against plain points redemptions, and a member's catalog
(with availability reasons) against the plain catalog, in the same run.

Data (in its own database ``loyalty_bench_rewards`` on the server of DATABASE_URL, dropped
and created afresh each run), made through the services: one program, twice
BENCH_REWARD_MEMBERS members (default 1,000 each for the baseline and the measured run)
with 10,000 points each, a voucher reward with stock (every redemption takes a unit of the
same row: the hot spot), and BENCH_CATALOG rewards (default 1,000) with tiers, labels,
limits and stock for the catalog read.

Measured:
1. ``rewards.services.reward_redeem`` on BENCH_THREADS threads (default 8), each member
   once: redemptions per second and latency percentiles. Baseline: ``points_redeem`` of
   the same points by the same threads for the same number of other members. The ratio
   is the cost of a redemption (stock, voucher with its code, events) over the bare ledger
   write it contains.
2. ``member_catalog`` + reasons for one member over the whole catalog
   (``include_unavailable``), median of 20 reads, and its query count (fixed, whatever the
   catalog size). Baseline: the plain catalog list (``reward_list``) of the same rewards.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty .venv/bin/python bench/bench_rewards.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from _support import percentile_ms, recreate_database, run_threads

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = int(os.environ.get("BENCH_REWARD_MEMBERS", "1000"))
CATALOG = int(os.environ.get("BENCH_CATALOG", "1000"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
DB_NAME = "loyalty_bench_rewards"


def _setup_django() -> str:
    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    # Webhook dispatch tasks go to Redis under a prefix of this run and are deleted at the
    # end: nothing but the measured work runs in-process.
    prefix = f"bench-rewards-{os.getpid()}-"
    os.environ["CELERY_BROKER_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["CELERY_REDIS_KEY_PREFIX"] = prefix
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "membership_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return prefix


def _make_data():
    from decimal import Decimal

    from tqdm import tqdm

    from members import services as member_services
    from membership_site.actors import Actor
    from points import services as points_services
    from points.selectors import default_currency
    from programs import services as program_services
    from rewards import services
    from tiers import services as tier_services

    actor = Actor.system("bench")
    program = program_services.program_create(
        code="bench", name="Bench", timezone="Europe/Paris", currency="EUR", phone_region="FR", actor=actor
    )
    pts = default_currency(program_id=program.pk)
    tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=actor)
    gold = tier_services.tier_create(program=program, code="gold", name="Gold", rank=30, actor=actor)
    vip = member_services.label_create(program=program, code="vip", name="VIP", actor=actor)
    members = []
    for index in tqdm(range(2 * MEMBERS), desc="members", file=sys.stderr):
        member = member_services.member_create(program=program, actor=actor, first_name=f"M{index}")
        points_services.points_earn(member=member, amount=10_000, actor=actor)
        members.append(member)
    hot = services.reward_create(
        program=program,
        code="hot",
        name="Hot voucher",
        kind="amount_voucher",
        voucher_amount=Decimal("5"),
        stock=10 * MEMBERS,
        costs={pts: 500},
        actor=actor,
    )
    for index in tqdm(range(CATALOG), desc="catalog", file=sys.stderr):
        services.reward_create(
            program=program,
            code=f"r{index:05d}",
            name=f"Reward {index}",
            kind="amount_voucher",
            voucher_amount=Decimal("1"),
            stock=index % 7,
            limit_total=2 if index % 3 else None,
            limit_per_period=1 if index % 5 == 0 else None,
            limit_period="month" if index % 5 == 0 else "",
            eligible_tiers=[gold] if index % 4 == 0 else [],
            eligible_labels=[vip] if index % 6 == 0 else [],
            costs={pts: 100 + index * 20},
            actor=actor,
        )
    return program, pts, hot, members


def main() -> None:
    prefix = _setup_django()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from membership_site.actors import Actor
    from points import services as points_services
    from rewards import selectors, services
    from rewards.models import Reward

    print(f"Setting up {2 * MEMBERS} members and {CATALOG} rewards...", flush=True)
    program, pts, hot, members = _make_data()
    actor = Actor.system("bench")
    baseline_members, reward_members = members[:MEMBERS], members[MEMBERS:]

    print("Baseline: points_redeem ...", flush=True)
    base_elapsed, base_lat = run_threads(
        lambda member: points_services.points_redeem(member=member, amount=500, currency=pts, actor=actor),
        baseline_members,
        THREADS,
    )
    print("Measured: reward_redeem ...", flush=True)
    red_elapsed, red_lat = run_threads(
        lambda member: services.reward_redeem(member=member, reward=hot, actor=actor), reward_members, THREADS
    )
    assert Reward.objects.get(pk=hot.pk).stock == 9 * MEMBERS

    def catalog_read(member):
        ctx = selectors.member_context(member=member)
        rewards = list(selectors.member_catalog(member=member, ctx=ctx, include_unavailable=True))
        return [selectors.reward_reasons(reward, ctx) for reward in rewards]

    def plain_read():
        return list(selectors.reward_list(program=program))

    member = reward_members[0]
    catalog_times, plain_times = [], []
    for _ in range(20):
        started = time.perf_counter()
        reasons = catalog_read(member)
        catalog_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        plain_read()
        plain_times.append(time.perf_counter() - started)
    assert len(reasons) == CATALOG + 1
    with CaptureQueriesContext(connection) as large:
        catalog_read(member)

    result = {
        "members": MEMBERS,
        "threads": THREADS,
        "catalog_size": CATALOG + 1,
        "redeem": {
            "per_second": MEMBERS / red_elapsed,
            "p50_ms": percentile_ms(red_lat, 0.5),
            "p95_ms": percentile_ms(red_lat, 0.95),
            "p99_ms": percentile_ms(red_lat, 0.99),
        },
        "baseline_points_redeem": {
            "per_second": MEMBERS / base_elapsed,
            "p50_ms": percentile_ms(base_lat, 0.5),
            "p95_ms": percentile_ms(base_lat, 0.95),
            "p99_ms": percentile_ms(base_lat, 0.99),
        },
        "catalog_read_ms": statistics.median(catalog_times) * 1000,
        "baseline_plain_catalog_ms": statistics.median(plain_times) * 1000,
        "catalog_queries": len(large.captured_queries),
    }
    result["redeem_ratio"] = result["redeem"]["per_second"] / result["baseline_points_redeem"]["per_second"]
    result["catalog_ratio"] = result["catalog_read_ms"] / result["baseline_plain_catalog_ms"]

    print()
    print(f"Redemptions ({THREADS} threads, {MEMBERS} each):")
    print(
        f"  reward_redeem   {result['redeem']['per_second']:8.1f}/s  p50 {result['redeem']['p50_ms']:.1f} ms"
        f"  p95 {result['redeem']['p95_ms']:.1f} ms"
    )
    print(
        f"  points_redeem   {result['baseline_points_redeem']['per_second']:8.1f}/s  "
        f"p50 {result['baseline_points_redeem']['p50_ms']:.1f} ms  (baseline)"
    )
    print(f"  ratio           {result['redeem_ratio']:.2f} x the baseline's rate")
    print(f"Member catalog with reasons ({CATALOG + 1} rewards):")
    print(f"  member_catalog  {result['catalog_read_ms']:8.1f} ms  ({result['catalog_queries']} queries)")
    print(f"  reward_list     {result['baseline_plain_catalog_ms']:8.1f} ms  (baseline)")
    print(f"  ratio           {result['catalog_ratio']:.2f} x the baseline's time")

    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "bench_rewards.json").write_text(json.dumps(result, indent=2))

    import redis

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


if __name__ == "__main__":
    main()
