"""Benchmark: earn and redeem through the HTTP API under gunicorn, against pgbench.

One run, on the PostgreSQL server of DATABASE_URL:
1. pgbench's TPC-B-like transaction rate (its own database, initialised here) with the same
   number of clients: the baseline of what this machine's database does;
2. the app under gunicorn on its own database (created and migrated here) with
   BENCH_MEMBERS members, driven by BENCH_CLIENTS concurrent HTTP clients (threads in a few
   processes, keep-alive connections of the standard library's HTTP client) for
   BENCH_SECONDS per scenario: earn and redeem spread over all
   members, then earn and redeem all on one member (lock contention on one account);
3. the same clients on two ceiling scenarios: ``GET /healthz`` (no authentication, one
   trivial query) and an authenticated ``GET .../balances``: what this stack serves at best on
   this machine, which bounds what any earn implementation can reach;
4. ``points_verify_ledger`` on the result (the load must leave the ledger consistent).

For each scenario (and pgbench) it also reads, from /proc, the CPU that gunicorn and the
local PostgreSQL server used during the measured window, per request: with the CPU budget
per earn that the goal implies on this machine, it shows where an earn's cost lies.

Prints throughput, p50/p95/p99 latency, the ratio earn-per-second / pgbench-tps (goal >=
0.20 with p99 < 50 ms) and writes bench/results/ledger.json. Events are queued to Redis
(CELERY_BROKER_URL) as in production, under a throwaway key prefix removed afterwards;
no worker consumes them during the run.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent

MEMBERS = int(os.environ.get("BENCH_MEMBERS", "1000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
WARMUP_SECONDS = 2.0
# One worker per core and one more: the requests are CPU-bound and PostgreSQL shares the
# cores; gunicorn's usual 2 x cores + 1 (for workers that wait on I/O) measured ~20% fewer
# earns per second here, the extra workers costing context switches.
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", str((os.cpu_count() or 2) + 1)))
# pgbench wants a scale at least as large as its number of clients (one branch row each).
PGBENCH_SCALE = int(os.environ.get("BENCH_PGBENCH_SCALE", str(max(CLIENTS, 10))))
GOAL_RATIO = 0.20
GOAL_P99_MS = 50.0
CLIENT_PROCESSES = min(CLIENTS, int(os.environ.get("BENCH_CLIENT_PROCESSES", "2")))


def _db_urls() -> tuple[str, str, str]:
    base = urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loyalty"))
    return (
        base._replace(path="/postgres").geturl(),
        base._replace(path="/loyalty_bench").geturl(),
        base._replace(path="/loyalty_pgbench").geturl(),
    )


def _recreate(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_args(url: str) -> list[str]:
    parsed = urlparse(url)
    args = [
        "-h",
        parsed.hostname or "127.0.0.1",
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
    ]
    return [*args, parsed.path.lstrip("/")]


def run_pgbench(url: str) -> dict:
    env = {**os.environ}
    if urlparse(url).password:
        env["PGPASSWORD"] = urlparse(url).password
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(PGBENCH_SCALE), *_pg_args(url)],
        check=True,
        env=env,
        capture_output=True,
    )
    seconds = int(SECONDS)
    process = subprocess.Popen(
        ["pgbench", "-c", str(CLIENTS), "-j", "2", "-T", str(seconds), *_pg_args(url)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # pgbench's backends exit with it, taking their CPU times along: sample while they run
    # (from one second in to one second before the end) and scale to the whole run.
    time.sleep(1)
    cpu_before, window = cpu_sample(None), time.perf_counter()
    time.sleep(max(0.5, seconds - 2))
    cpu_after, window = cpu_sample(None), time.perf_counter() - window
    output, errors = process.communicate()
    if process.returncode:
        raise RuntimeError(f"pgbench failed: {errors}")
    if cpu_before:
        cpu_after = {
            part: cpu_before[part] + (cpu_after[part] - cpu_before[part]) * seconds / window
            for part in cpu_after
        }
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", output).group(1))
    latency = re.search(r"latency average = ([\d.]+) ms", output)
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", output).group(1))
    cpu = cpu_per_request(cpu_before, cpu_after, transactions)
    return {
        "tps": tps,
        "clients": CLIENTS,
        "scale": PGBENCH_SCALE,
        "latency_avg_ms": float(latency.group(1)),
        **({"database_cpu_ms": cpu["database_cpu_ms"]} if cpu else {}),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _app_env(db_url: str, key_prefix: str) -> dict[str, str]:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "bench-only-secret-key-not-for-production",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "API_THROTTLE_RATE": "100000000/min",
        "DATABASE_CONN_MAX_AGE": "600",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_REDIS_KEY_PREFIX": key_prefix,
        # Static files are not served here; an existing directory keeps WhiteNoise quiet.
        "STATIC_ROOT": tempfile.gettempdir(),
    }


# --- CPU accounting (Linux /proc) ---------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_sample(server_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by the app server (gunicorn's master and workers) and by the
    local PostgreSQL server's processes (backends and background processes). Empty where
    there is no /proc; the database part is 0 when the server runs on another machine."""
    if not os.path.isdir("/proc"):
        return {}
    server = database = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                raw = stat.read()
        except OSError:  # the process has gone
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()  # state, ppid, ...; utime and stime at 11, 12
        seconds = (int(fields[11]) + int(fields[12])) / _TICKS
        if server_pid is not None and server_pid in (int(entry), int(fields[1])):
            server += seconds
        elif name.startswith("postgres"):
            database += seconds
    return {"server": server, "database": database}


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request (or pgbench transaction) of each part."""
    if not before or not requests:
        return {}
    return {f"{part}_cpu_ms": round((after[part] - before[part]) / requests * 1000, 2) for part in before}


# --- Load generation -----------------------------------------------------------------------


def _client_process(base_url, key, paths, threads, start_at, stop_at, queue):
    """One load process: ``threads`` keep-alive clients posting until ``stop_at``.
    Latencies recorded from ``start_at`` on (the rest is warm-up)."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    host, port = base_url.removeprefix("http://").split(":")
    # A body of None is a GET (the ceiling scenarios), anything else a JSON POST.
    encoded = [
        ("GET", path, None, 200) if body is None else ("POST", path, json.dumps(body).encode(), 201)
        for path, body in paths
    ]

    def loop(seed):
        # The standard library's client: the load generator shares the two cores with the
        # server and the database, so it should cost as little CPU per request as possible.
        rng = random.Random(seed)
        local, local_errors = [], {}
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            now = time.time()
            if now >= stop_at:
                break
            method, path, body, expected = rng.choice(encoded)
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if now >= start_at:
                if response.status == expected:
                    local.append(elapsed)
                else:
                    local_errors[str(response.status)] = local_errors.get(str(response.status), 0) + 1
        connection.close()
        with lock:
            latencies.extend(local)
            for code, count in local_errors.items():
                errors[code] = errors.get(code, 0) + count

    workers = [threading.Thread(target=loop, args=(seed,)) for seed in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put((latencies, errors))


def drive(base_url: str, key: str, paths: list[tuple[str, dict]], server_pid: int | None = None) -> dict:
    start_at = time.time() + WARMUP_SECONDS
    stop_at = start_at + SECONDS
    queue: multiprocessing.Queue = multiprocessing.Queue()
    per_process = [
        CLIENTS // CLIENT_PROCESSES + (1 if i < CLIENTS % CLIENT_PROCESSES else 0)
        for i in range(CLIENT_PROCESSES)
    ]
    processes = [
        multiprocessing.Process(
            target=_client_process, args=(base_url, key, paths, n, start_at, stop_at, queue)
        )
        for n in per_process
    ]
    for process in processes:
        process.start()
    # CPU used during the measured window only (the clients record latencies from start_at).
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = cpu_sample(server_pid)
    time.sleep(max(0.0, stop_at - time.time()))
    cpu_after = cpu_sample(server_pid)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    for _ in processes:
        part, part_errors = queue.get(timeout=SECONDS + 120)
        latencies.extend(part)
        for code, count in part_errors.items():
            errors[code] = errors.get(code, 0) + count
    for process in processes:
        process.join()
    latencies.sort()

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 2)
            if latencies
            else 0.0
        )

    return {
        "requests": len(latencies),
        "per_second": round(len(latencies) / SECONDS, 1),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
        "errors": errors,
        **cpu_per_request(cpu_before, cpu_after, len(latencies)),
    }


# --- The run -------------------------------------------------------------------------------


def main() -> int:
    admin_url, app_url, pgbench_url = _db_urls()
    key_prefix = f"bench-ledger-{uuid.uuid4().hex[:8]}-"
    results: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
        "settings": {
            "members": MEMBERS,
            "clients": CLIENTS,
            "seconds": SECONDS,
            "gunicorn_workers": WORKERS,
            "client_processes": CLIENT_PROCESSES,
        },
    }
    print(f"pgbench: TPC-B-like, scale {PGBENCH_SCALE}, {CLIENTS} clients, {SECONDS:.0f} s ...", flush=True)
    _recreate(admin_url, "loyalty_pgbench")
    try:
        results["pgbench"] = run_pgbench(pgbench_url)
    finally:
        _drop(admin_url, "loyalty_pgbench")
    print(f"  {results['pgbench']['tps']:.0f} tps", flush=True)

    _recreate(admin_url, "loyalty_bench")
    env = _app_env(app_url, key_prefix)
    server = None
    exit_code = 0
    try:
        print("Migrating the bench database ...", flush=True)
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        print(f"Loading {MEMBERS} members with an opening balance ...", flush=True)
        setup = subprocess.run(
            [PYTHON, str(ROOT / "bench" / "_ledger_setup.py"), str(MEMBERS)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if setup.returncode != 0:
            raise RuntimeError(f"Loading the bench data failed:\n{setup.stderr[-5000:]}")
        data = json.loads(setup.stdout.strip().splitlines()[-1])
        results["queries"] = {"earn": data["queries_per_earn"], "redeem": data["queries_per_redeem"]}
        results["sequential_earn"] = {
            "wall_ms": data["sequential_earn_ms"],
            "app_cpu_ms": data["app_cpu_ms_per_earn"],
        }
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "membership_site.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(WORKERS),
                "--worker-class",
                "sync",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.3)

        members = data["member_ids"]
        hot = members[0]
        scenarios = {
            "earn": [(f"/api/v1/members/{m}/points/earn", {"amount": 10}) for m in members],
            "redeem": [(f"/api/v1/members/{m}/points/redeem", {"amount": 5}) for m in members],
            "earn_hot_member": [(f"/api/v1/members/{hot}/points/earn", {"amount": 10})],
            "redeem_hot_member": [(f"/api/v1/members/{hot}/points/redeem", {"amount": 5})],
            # The ceiling of this stack on this machine, whatever the ledger does: the
            # health check (no authentication, one trivial query) and an authenticated read
            # of a member's balances (API key, scope check, two small queries).
            "ceiling_healthz": [("/healthz", None)],
            "ceiling_balances": [(f"/api/v1/members/{m}/balances", None) for m in members],
        }
        results["scenarios"] = {}
        for name, paths in scenarios.items():
            print(f"{name}: {CLIENTS} clients, {SECONDS:.0f} s ...", flush=True)
            results["scenarios"][name] = outcome = drive(base_url, data["api_key"], paths, server.pid)
            print(
                f"  {outcome['per_second']:.0f}/s  p50 {outcome['p50_ms']} ms  p95 {outcome['p95_ms']} ms  "
                f"p99 {outcome['p99_ms']} ms  errors {outcome['errors'] or 'none'}",
                flush=True,
            )
            if outcome["errors"]:
                exit_code = 1
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        server = None

        verify = subprocess.run(
            [PYTHON, "manage.py", "points_verify_ledger", "--no-progress"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        results["ledger_consistent"] = verify.returncode == 0
        if verify.returncode != 0:
            print(verify.stdout[-3000:], verify.stderr[-3000:])
            exit_code = 1
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        for key in client.scan_iter(match=f"{key_prefix}*"):
            client.delete(key)
        if not os.environ.get("BENCH_KEEP_DB"):
            _drop(admin_url, "loyalty_bench")

    results["machine"]["load_average_at_end"] = os.getloadavg()
    earn = results["scenarios"]["earn"]
    ratio = earn["per_second"] / results["pgbench"]["tps"]
    results["ratio_earn_per_pgbench_tps"] = round(ratio, 3)
    results["goal"] = {
        "ratio": GOAL_RATIO,
        "p99_ms": GOAL_P99_MS,
        "met": ratio >= GOAL_RATIO and earn["p99_ms"] < GOAL_P99_MS,
    }
    print()
    print(f"{'scenario':<20}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'app CPU':>9}{'db CPU':>9}")
    for name, outcome in results["scenarios"].items():
        print(
            f"{name:<20}{outcome['per_second']:>9.0f}{outcome['p50_ms']:>9}{outcome['p95_ms']:>9}{outcome['p99_ms']:>9}"
            f"{outcome.get('server_cpu_ms', '-'):>9}{outcome.get('database_cpu_ms', '-'):>9}"
        )
    print(
        f"{'pgbench (TPC-B)':<20}{results['pgbench']['tps']:>9.0f}{'':>27}{'':>9}"
        f"{results['pgbench'].get('database_cpu_ms', '-'):>9}"
    )
    print("(CPU columns: milliseconds of CPU per request, of gunicorn and of PostgreSQL)")
    print(
        f"Baseline pgbench {results['pgbench']['tps']:.0f} tps; earn {earn['per_second']:.0f}/s; "
        f"ratio {ratio:.3f} (goal >= {GOAL_RATIO}, p99 {earn['p99_ms']} ms, goal < {GOAL_P99_MS} ms): "
        f"{'met' if results['goal']['met'] else 'NOT met'}"
    )
    for name in ("ceiling_healthz", "ceiling_balances"):
        ceiling = results["scenarios"][name]["per_second"] / results["pgbench"]["tps"]
        results[f"ratio_{name}_per_pgbench_tps"] = round(ceiling, 3)
        print(f"Ceiling {name.removeprefix('ceiling_')}: {ceiling:.3f} of pgbench (no earn can beat it)")
    if "server_cpu_ms" in earn:
        # What the goal asks of one earn: at the goal rate, the machine's cores shared by
        # the server, the database and the load generator leave this much CPU per earn.
        goal_rate = GOAL_RATIO * results["pgbench"]["tps"]
        budget_ms = (os.cpu_count() or 1) / goal_rate * 1000
        used_ms = earn["server_cpu_ms"] + earn["database_cpu_ms"]
        healthz_ms = results["scenarios"]["ceiling_healthz"].get("server_cpu_ms")
        results["goal"]["cpu_budget_ms_per_earn"] = round(budget_ms, 2)
        results["goal"]["cpu_used_ms_per_earn"] = round(used_ms, 2)
        print(
            f"At the goal ({goal_rate:.0f} earns/s on {os.cpu_count()} cores) one earn may use at most "
            f"{budget_ms:.2f} ms of CPU in all; it uses {earn['server_cpu_ms']} ms in the app and "
            f"{earn['database_cpu_ms']} ms in PostgreSQL ({used_ms / budget_ms:.1f}x the budget; "
            f"GET /healthz alone: {healthz_ms} ms in the app)"
        )
    print(f"Queries per request: earn {results['queries']['earn']}, redeem {results['queries']['redeem']}")
    print(
        f"One earn at a time (in-process): {results['sequential_earn']['wall_ms']} ms wall, "
        f"{results['sequential_earn']['app_cpu_ms']} ms of application CPU"
    )
    print(f"Ledger after the run: {'consistent' if results.get('ledger_consistent') else 'DIFFERENCES'}")
    load = results["machine"]
    print(
        f"Load average (1 min) at start {load['load_average_at_start'][0]:.1f}, "
        f"at end {load['load_average_at_end'][0]:.1f}"
    )
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ledger.json").write_text(json.dumps(results, indent=2))
    print(f"Wrote {out_dir / 'ledger.json'}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
