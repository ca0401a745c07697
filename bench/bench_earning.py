"""Benchmark: recording purchases (50-line baskets, 20 active campaigns, tiers) against the
plain ledger earn each purchase contains, in the same run; and the quote.

Data (in its own database ``loyalty_bench_earning`` on the server of DATABASE_URL, dropped
and created afresh each run), made through the services: one program with Bronze and
Silver tiers, a base rule of 1 point per EUR, 20 campaigns of every kind (multipliers that
add, multiply or take the best, bonuses per line and per purchase, an extra rate, per-member
day and month caps, and one budgeted campaign every basket uses: the hot row), and twice
BENCH_EARNING_MEMBERS members (default 500 each for the baseline and the measured run).

Measured:
1. ``purchase_record`` of a 50-line basket on BENCH_THREADS threads (default 8), each
   member once: purchases per second and latency percentiles. Baseline: ``points_earn`` of
   the same number of points by the same threads for the other members. The ratio is the
   cost of a purchase (rules, breakdown, lines, tier activity, events) over the ledger
   write it contains.
2. ``purchase_quote`` of the same basket (median of 50) and its query count, against the
   pure computation alone (``compute``).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty .venv/bin/python bench/bench_earning.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from _support import percentile_ms, recreate_database, run_threads

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = int(os.environ.get("BENCH_EARNING_MEMBERS", "500"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
LINES = 50
CAMPAIGNS = 20
DB_NAME = "loyalty_bench_earning"


def _setup_django() -> str:
    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    # Webhook dispatch tasks go to Redis under a prefix of this run and are deleted at the
    # end: nothing but the measured work runs in-process.
    prefix = f"bench-earning-{os.getpid()}-"
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


def _basket():
    from decimal import Decimal

    from points.earning.basket import LineInput

    return [
        LineInput(
            sku=f"SKU{n}",
            category=("coffee", "tea", "kitchen")[n % 3],
            quantity=Decimal(1 + n % 3),
            unit_price=Decimal("3.10") + n,
            discount=Decimal("0.50") if n % 5 == 0 else Decimal(0),
            gift_card=n == LINES - 1,
        )
        for n in range(LINES)
    ]


def _make_data():
    from decimal import Decimal

    from tqdm import tqdm

    from members import services as member_services
    from membership_site.actors import Actor
    from points.earning import config
    from programs import services as program_services
    from tiers import services as tier_services

    actor = Actor.system("bench")
    program = program_services.program_create(
        code="bench", name="Bench", timezone="Europe/Paris", currency="EUR", phone_region="FR", actor=actor
    )
    tier_services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=actor)
    tier_services.tier_create(
        program=program,
        code="silver",
        name="Silver",
        rank=20,
        qualify_spend=Decimal("100000"),
        earn_multiplier=Decimal("1.25"),
        actor=actor,
    )
    config.earning_rule_create(program=program, code="base", name="Base", value=Decimal(1), actor=actor)
    kinds = [
        {"effect": "multiplier", "value": "2", "categories": ["coffee"]},
        {"effect": "multiplier", "value": "1.5", "stacking": "multiply", "categories": ["tea"]},
        {"effect": "fixed_bonus", "value": "5", "skus": ["SKU1", "SKU2", "SKU3"]},
        {"effect": "fixed_bonus", "value": "20", "scope": "per_purchase", "max_points_per_member_day": 100},
        {"effect": "points_per_unit", "value": "0.5", "max_points_per_member_month": 5000},
        {"effect": "multiplier", "value": "3", "stacking": "best", "skus": ["SKU7"]},
    ]
    for index in range(CAMPAIGNS - 1):
        fields = dict(kinds[index % len(kinds)])
        value = Decimal(fields.pop("value"))
        config.campaign_create(
            program=program,
            code=f"c{index}",
            name=f"Campaign {index}",
            value=value,
            priority=index,
            actor=actor,
            **fields,
        )
    config.campaign_create(
        program=program,
        code="budgeted",
        name="Budgeted",
        effect="fixed_bonus",
        scope="per_purchase",
        value=Decimal(10),
        budget_points=10**9,
        actor=actor,
    )
    members = [
        member_services.member_create(program=program, actor=actor, first_name=f"M{index}")
        for index in tqdm(range(2 * MEMBERS), desc="members", file=sys.stderr)
    ]
    return program, members


def main() -> None:
    prefix = _setup_django()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from membership_site.actors import Actor
    from points import services as points_services
    from points.earning import compute, purchases, selectors
    from points.models import Purchase

    print(f"Setting up {2 * MEMBERS} members, 1 rule and {CAMPAIGNS} campaigns...", flush=True)
    program, members = _make_data()
    actor = Actor.system("bench")
    baseline_members, purchase_members = members[:MEMBERS], members[MEMBERS:]
    basket = _basket()
    points = purchases.purchase_quote(program=program, member=purchase_members[0], lines=basket).computation
    per_purchase = max(points.currencies[min(points.currencies)].points, 1)

    print(f"Baseline: points_earn of {per_purchase} points ...", flush=True)
    base_elapsed, base_lat = run_threads(
        lambda member: points_services.points_earn(member=member, amount=per_purchase, actor=actor),
        baseline_members,
        THREADS,
    )
    print(f"Measured: purchase_record of {LINES}-line baskets ...", flush=True)
    numbers = iter(range(10**9))
    lock = threading.Lock()

    def record(member):
        with lock:
            reference = f"B-{next(numbers)}"
        purchases.purchase_record(
            program=program, member=member, reference=reference, lines=basket, actor=actor
        )

    buy_elapsed, buy_lat = run_threads(record, purchase_members, THREADS)
    assert Purchase.objects.count() == MEMBERS

    member = purchase_members[0]
    quote_times = []
    for _ in range(50):
        started = time.perf_counter()
        purchases.purchase_quote(program=program, member=member, lines=basket)
        quote_times.append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as quote_queries:
        quote = purchases.purchase_quote(program=program, member=member, lines=basket)
    rules, campaigns = selectors.active_rules(program=program, on=quote.occurred_at.date())
    specs = selectors.rule_specs([*rules, *campaigns])
    facts = selectors.member_facts(member=member)
    pure_basket = compute.Basket(
        when=quote.occurred_at.astimezone(program.tz),
        location=None,
        lines=tuple(line.for_compute() for line in quote.basket.lines),
    )
    compute_times = []
    for _ in range(50):
        started = time.perf_counter()
        compute.compute(basket=pure_basket, member=facts, rules=specs)
        compute_times.append(time.perf_counter() - started)

    result = {
        "members": MEMBERS,
        "threads": THREADS,
        "lines": LINES,
        "campaigns": CAMPAIGNS,
        "points_per_purchase": per_purchase,
        "purchase": {
            "per_second": MEMBERS / buy_elapsed,
            "p50_ms": percentile_ms(buy_lat, 0.5),
            "p95_ms": percentile_ms(buy_lat, 0.95),
            "p99_ms": percentile_ms(buy_lat, 0.99),
        },
        "baseline_points_earn": {
            "per_second": MEMBERS / base_elapsed,
            "p50_ms": percentile_ms(base_lat, 0.5),
            "p95_ms": percentile_ms(base_lat, 0.95),
            "p99_ms": percentile_ms(base_lat, 0.99),
        },
        "quote_ms": statistics.median(quote_times) * 1000,
        "quote_queries": len(quote_queries.captured_queries),
        "baseline_compute_ms": statistics.median(compute_times) * 1000,
    }
    result["purchase_ratio"] = result["purchase"]["per_second"] / result["baseline_points_earn"]["per_second"]
    result["quote_ratio"] = result["quote_ms"] / result["baseline_compute_ms"]

    print()
    print(f"Purchases ({THREADS} threads, {MEMBERS} each, {LINES} lines, {CAMPAIGNS} campaigns):")
    measured = result["purchase"]
    print(
        f"  purchase_record {measured['per_second']:8.1f}/s  p50 {measured['p50_ms']:.1f} ms"
        f"  p95 {measured['p95_ms']:.1f} ms"
    )
    print(
        f"  points_earn     {result['baseline_points_earn']['per_second']:8.1f}/s  "
        f"p50 {result['baseline_points_earn']['p50_ms']:.1f} ms  (baseline)"
    )
    print(f"  ratio           {result['purchase_ratio']:.2f} x the baseline's rate")
    print("Quote of the same basket:")
    print(f"  purchase_quote  {result['quote_ms']:8.2f} ms  ({result['quote_queries']} queries)")
    print(f"  compute alone   {result['baseline_compute_ms']:8.2f} ms  (baseline)")
    print(f"  ratio           {result['quote_ratio']:.2f} x the baseline's time")

    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "bench_earning.json").write_text(json.dumps(result, indent=2))

    import redis

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


if __name__ == "__main__":
    main()
