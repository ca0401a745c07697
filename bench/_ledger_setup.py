"""Loads the data for bench_ledger.py into its database (DATABASE_URL, already migrated)
and prints one JSON line: the API key, member ids and the queries one earn / one redeem
request makes. Run by bench_ledger.py in a subprocess."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "membership_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from integrations import services as integration_services  # noqa: E402
from members import services as member_services  # noqa: E402
from membership_site.actors import Actor  # noqa: E402
from points import services as points_services  # noqa: E402
from programs import services as program_services  # noqa: E402

ACTOR = Actor.system("bench")
STARTING_POINTS = 1_000_000
SEQUENTIAL_EARNS = 200


def _count_queries(client: Client, url: str, body: dict) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, body, content_type="application/json")
    assert response.status_code == 201, response.content
    return len(queries.captured_queries)


def main() -> None:
    members_wanted = int(sys.argv[1])
    program = program_services.program_create(
        code="bench", name="Bench", timezone="Europe/Paris", currency="EUR", actor=ACTOR
    )
    integration = integration_services.integration_create(
        program=program, name="bench till", scopes=["points:read", "points:write"], actor=ACTOR
    )
    key = integration_services.api_key_create(integration=integration, actor=ACTOR).key
    member_ids = []
    for chunk_start in range(0, members_wanted, 200):
        with transaction.atomic():
            for n in range(chunk_start, min(chunk_start + 200, members_wanted)):
                member = member_services.member_create(
                    program=program, actor=ACTOR, first_name=f"Bench{n}", email=f"bench{n}@example.com"
                )
                # A large opening balance so that every redemption of the run succeeds.
                points_services.points_earn(member=member, amount=STARTING_POINTS, actor=ACTOR)
                member_ids.append(member.pk)
    client = Client(HTTP_X_API_KEY=key, HTTP_HOST="127.0.0.1")
    earn_queries = _count_queries(client, f"/api/v1/members/{member_ids[0]}/points/earn", {"amount": 1})
    redeem_queries = _count_queries(client, f"/api/v1/members/{member_ids[0]}/points/redeem", {"amount": 1})
    # One request at a time, in this process: the app's own CPU time per earn (the
    # database's is not included) and the wall time, without any concurrency.
    url = f"/api/v1/members/{member_ids[-1]}/points/earn"
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(SEQUENTIAL_EARNS):
        client.post(url, {"amount": 1}, content_type="application/json")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        json.dumps(
            {
                "api_key": key,
                "member_ids": member_ids,
                "queries_per_earn": earn_queries,
                "queries_per_redeem": redeem_queries,
                "sequential_earn_ms": round(wall / SEQUENTIAL_EARNS * 1000, 2),
                "app_cpu_ms_per_earn": round(cpu / SEQUENTIAL_EARNS * 1000, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
