"""Benchmark: the nightly tier evaluation of 1,000,000 members, against a plain GROUP BY of
the same activity in the same run.

Data (generated in PostgreSQL with generate_series, in its own database
``loyalty_bench_tiers`` on the server of DATABASE_URL, dropped and created afresh each run):

- one program (Europe/Paris, EUR) with Bronze (default), Silver, Gold and Platinum tiers on
  a rolling 12-month window, made through the services;
- BENCH_MEMBERS members (default 1,000,000) with 1 to 7 purchases each (about 4 on
  average) spread over the last 14 months;
- each member's tier state as yesterday's evaluation would have left it (the tier their
  activity before yesterday supports), with about 1% in grace ending today, 0.5% locked
  and 0.2% holding a lifetime Gold tier, so that today's run has the usual nightly mix of
  upgrades, grace starts, recoveries and downgrades to write (with their history rows and
  ``tier.changed`` events).

Measured: ``tiers.services.tiers_evaluate`` for today, exactly as the nightly task runs it
(batches of TIERS_EVALUATION_BATCH_SIZE), then the same day again (it must change
nothing). Baseline: ``SELECT member_id, sum(spend), sum(points), sum(visits) ... GROUP BY
member_id`` over the same rows and window, fetched by the client as the evaluation fetches
its sums. Goal: the evaluation under 60 seconds on this machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty .venv/bin/python bench/bench_tiers.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from _support import recreate_database

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = int(os.environ.get("BENCH_MEMBERS", "1000000"))
GOAL_SECONDS = 60.0
DB_NAME = "loyalty_bench_tiers"


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    # A real broker: the webhook dispatch the events queue is left to other workers (and
    # deleted at the end), as in production; nothing runs in-process.
    os.environ["CELERY_BROKER_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["CELERY_REDIS_KEY_PREFIX"] = f"bench-tiers-{os.getpid()}-"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "membership_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _step(label: str, started: float) -> None:
    print(f"  {label:<44} {time.perf_counter() - started:7.1f} s", flush=True)


def _member_insert_sql(program_id: int) -> tuple[str, list]:
    """INSERT ... SELECT generate_series for members_member, whatever columns it has: the
    known ones get generated values, the others their default."""
    from django.db import connection

    from members.models import Member

    generated = {
        "program": "%s",
        "number": "lpad(n::text, 10, '0')",
        "status": "'active'",
        "status_changed_at": "now()",
        "created_at": "now()",
        "updated_at": "now()",
        "first_name": "'Member'",
        "last_name": "'N' || (n %% 5000)",
        "joined_at": "now() - (n %% 1800) * interval '1 day'",
        "preferences": "'{}'::jsonb",
    }
    columns, values, params = [], [], []
    for field in Member._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(f'"{field.column}"')
        if field.name in generated:
            values.append(generated[field.name])
            if field.name == "program":
                params.append(program_id)
        elif field.null:
            values.append("NULL")
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection=connection))
    sql = (
        f"INSERT INTO members_member ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM generate_series(1, {MEMBERS}) AS n"
    )
    return sql, params


def _make_data(today):
    from decimal import Decimal

    from django.db import connection

    from membership_site.actors import Actor
    from programs import services as program_services
    from tiers import rules, services

    actor = Actor.system("bench")
    program = program_services.program_create(
        code="bench", name="Bench", timezone="Europe/Paris", currency="EUR", phone_region="FR", actor=actor
    )
    tiers = {
        "bronze": services.tier_create(program=program, code="bronze", name="Bronze", rank=10, actor=actor),
        "silver": services.tier_create(
            program=program,
            code="silver",
            name="Silver",
            rank=20,
            qualify_spend=Decimal("500"),
            qualify_visits=12,
            retain_spend=Decimal("400"),
            retain_visits=10,
            grace_months=3,
            actor=actor,
        ),
        "gold": services.tier_create(
            program=program,
            code="gold",
            name="Gold",
            rank=30,
            qualify_spend=Decimal("1500"),
            retain_spend=Decimal("1200"),
            grace_months=3,
            actor=actor,
        ),
        "platinum": services.tier_create(
            program=program,
            code="platinum",
            name="Platinum",
            rank=40,
            qualify_spend=Decimal("4000"),
            retain_spend=Decimal("3200"),
            downgrade_policy="supported_level",
            actor=actor,
        ),
    }
    ids = {code: tier.pk for code, tier in tiers.items()}
    yesterday = today - timedelta(days=1)
    window_start = rules.add_months(yesterday, -12)

    started = time.perf_counter()
    sql, params = _member_insert_sql(program.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    _step(f"{MEMBERS:,} members", started)

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # 1-7 purchases a member over the 14 months before today. A member's spending level
        # (f, 1 to 20) spreads members over every tier; "+ m.id * 0" and "+ k * 0" make
        # PostgreSQL draw new numbers for each member and purchase. Seeded: same data each run.
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            """
            INSERT INTO tiers_tieractivity
                (program_id, member_id, occurred_at, occurred_on, source, reference, spend, points,
                 visits, recorded_at)
            SELECT %(program)s, m.id, d.day + interval '12 hours', d.day::date, 'purchase',
                   'r-' || m.id || '-' || k, d.spend, floor(d.spend)::bigint, 1, now()
            FROM members_member m
            CROSS JOIN LATERAL (
                SELECT exp(random() * 3 + m.id * 0) AS f, 1 + floor(random() * 7 + m.id * 0)::int AS n
            ) p
            CROSS JOIN LATERAL generate_series(1, p.n) AS k
            CROSS JOIN LATERAL (
                SELECT (%(today)s::date - (1 + floor(random() * 425 + k * 0))::int)::timestamp AS day,
                       round(((5 + random() * 60) * p.f + k * 0)::numeric, 2) AS spend
            ) d
            WHERE m.program_id = %(program)s
            """,
            {"program": program.pk, "today": today},
        )
        cursor.execute("SELECT count(*) FROM tiers_tieractivity")
        rows = cursor.fetchone()[0]
    _step(f"{rows:,} activity rows", started)

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Yesterday's outcome: the tier the activity before yesterday supports; then the
        # protected and in-grace minorities.
        cursor.execute(
            """
            INSERT INTO tiers_membertier
                (member_id, program_id, tier_id, since, grace_until, locked_until, lifetime_tier_id,
                 changed_on, updated_at)
            SELECT m.id, %(program)s,
                   CASE WHEN coalesce(a.spend, 0) >= 4000 THEN %(platinum)s
                        WHEN coalesce(a.spend, 0) >= 1500 THEN %(gold)s
                        WHEN coalesce(a.spend, 0) >= 500 OR coalesce(a.visits, 0) >= 12 THEN %(silver)s
                        ELSE %(bronze)s END,
                   m.joined_at, NULL, NULL, NULL, NULL, now()
            FROM members_member m
            LEFT JOIN (
                SELECT member_id, sum(spend) AS spend, sum(visits) AS visits FROM tiers_tieractivity
                WHERE occurred_on >= %(start)s AND occurred_on < %(yesterday)s GROUP BY member_id
            ) a ON a.member_id = m.id
            WHERE m.program_id = %(program)s
            """,
            {**ids, "program": program.pk, "start": window_start, "yesterday": yesterday},
        )
        # 1%: fell short of their tier before yesterday and their grace ends today (most go
        # down, some re-qualified); 1%: in grace for another month.
        cursor.execute(
            "UPDATE tiers_membertier SET grace_until = %(today)s, tier_id = CASE tier_id "
            "WHEN %(bronze)s THEN %(silver)s WHEN %(silver)s THEN %(gold)s ELSE %(platinum)s END "
            "WHERE random() < 0.01",
            {**ids, "today": today},
        )
        cursor.execute(
            "UPDATE tiers_membertier SET grace_until = %s WHERE grace_until IS NULL AND tier_id <> %s "
            "AND random() < 0.01",
            [today + timedelta(days=30), ids["bronze"]],
        )
        cursor.execute(
            "UPDATE tiers_membertier SET locked_until = %s WHERE random() < 0.005",
            [today + timedelta(days=30)],
        )
        cursor.execute(
            "UPDATE tiers_membertier SET lifetime_tier_id = %(gold)s, "
            "tier_id = CASE WHEN tier_id IN (%(bronze)s, %(silver)s) THEN %(gold)s ELSE tier_id END "
            "WHERE random() < 0.002",
            ids,
        )
    _step("tier states as of yesterday", started)

    started = time.perf_counter()
    connection.close()
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    _step("VACUUM ANALYZE (autovacuum's work)", started)
    return program, rows


def _baseline(program, today) -> tuple[float, int, int]:
    from django.db import connection

    from tiers import rules

    start = rules.add_months(today, -12)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT member_id, sum(spend), sum(points), sum(visits) FROM tiers_tieractivity "
            "WHERE program_id = %s AND occurred_on >= %s AND occurred_on < %s GROUP BY member_id",
            [program.pk, start, today],
        )
        groups = len(cursor.fetchall())
        seconds = time.perf_counter() - started
        cursor.execute(
            "SELECT count(*) FROM tiers_tieractivity WHERE program_id = %s AND occurred_on >= %s "
            "AND occurred_on < %s",
            [program.pk, start, today],
        )
        in_window = cursor.fetchone()[0]
    return seconds, groups, in_window


def _evaluate(program, today):
    from membership_site.actors import Actor
    from tiers import services

    started = time.perf_counter()
    if os.environ.get("BENCH_PROFILE"):  # where the time goes (cProfile; slower)
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        run = profiler.runcall(
            services.tiers_evaluate, program=program, on=today, actor=Actor.system("bench")
        )
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    else:
        run = services.tiers_evaluate(program=program, on=today, actor=Actor.system("bench"))
    return time.perf_counter() - started, run


def _forget_queued_tasks() -> None:
    import redis

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    for key in client.scan_iter(match=f"{os.environ['CELERY_REDIS_KEY_PREFIX']}*"):
        client.delete(key)


def main() -> int:
    print(f"Preparing {MEMBERS:,} members in {DB_NAME} ...", flush=True)
    _setup_django()
    from django.conf import settings

    from programs.models import Program
    from tiers.models import TierChange
    from tiers.rules import local_today
    from webhooks.models import Event

    today = local_today(Program(timezone="Europe/Paris"))
    program, rows = _make_data(today)

    baseline_seconds, groups, in_window = _baseline(program, today)
    eval_seconds, run = _evaluate(program, today)
    changes = TierChange.objects.count()
    events = Event.objects.filter(type="tier.changed").count()
    rerun_seconds, rerun = _evaluate(program, today)
    rerun_changes = rerun.upgrades + rerun.downgrades + rerun.grace_started + rerun.grace_ended
    _forget_queued_tasks()

    written = run.upgrades + run.downgrades + run.grace_started + run.grace_ended
    ok = (
        run.status == "finished"
        and run.members == MEMBERS
        and changes == written
        and events == written
        and rerun_changes == 0
        and TierChange.objects.count() == changes
    )
    ratio = eval_seconds / baseline_seconds
    result = {
        "members": MEMBERS,
        "activity_rows": rows,
        "activity_rows_in_window": in_window,
        "batch_size": settings.TIERS_EVALUATION_BATCH_SIZE,
        "baseline_group_by_seconds": round(baseline_seconds, 3),
        "baseline_rows_per_second": round(in_window / baseline_seconds),
        "evaluation_seconds": round(eval_seconds, 3),
        "evaluation_rows_per_second": round(in_window / eval_seconds),
        "evaluation_members_per_second": round(MEMBERS / eval_seconds),
        "ratio_evaluation_to_baseline": round(ratio, 2),
        "changes": {
            "upgrades": run.upgrades,
            "downgrades": run.downgrades,
            "grace_started": run.grace_started,
            "grace_ended": run.grace_ended,
            "skipped": run.skipped,
            "history_rows": changes,
            "events": events,
        },
        "rerun_seconds": round(rerun_seconds, 3),
        "rerun_changes": rerun_changes,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": eval_seconds < GOAL_SECONDS,
        "consistent": ok,
    }
    print(
        f"Members:                {MEMBERS:,}; activity rows {rows:,} ({in_window:,} in the 12-month window)"
    )
    print(
        f"Baseline GROUP BY:      {baseline_seconds:8.2f} s  {in_window / baseline_seconds:12,.0f} rows/s "
        f"({groups:,} groups fetched)"
    )
    print(
        f"Evaluation:             {eval_seconds:8.2f} s  {in_window / eval_seconds:12,.0f} rows/s  "
        f"{MEMBERS / eval_seconds:10,.0f} members/s (batches of {settings.TIERS_EVALUATION_BATCH_SIZE:,})"
    )
    print(
        f"  wrote:                {run.upgrades:,} upgrades, {run.downgrades:,} downgrades, "
        f"{run.grace_started:,} grace started, {run.grace_ended:,} grace ended "
        f"({changes:,} history rows, {events:,} events)"
    )
    print(f"Ratio evaluation/GROUP BY: {ratio:5.1f}x")
    print(f"Same day again:         {rerun_seconds:8.2f} s  ({rerun_changes} changes)")
    print(f"Goal < {GOAL_SECONDS:.0f} s:            {'met' if eval_seconds < GOAL_SECONDS else 'NOT met'}")
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "bench_tiers.json").write_text(json.dumps(result, indent=2))
    if not ok:
        print(f"FAILED consistency checks: {result}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
