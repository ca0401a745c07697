"""Fail early, with a clear message, when PostgreSQL or Redis is unreachable.

Used by `make test` and `make bench` before anything else runs.
"""

import os
import sys
from urllib.parse import urlparse

import psycopg
import redis


def main() -> int:
    problems = []
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loyalty")
    parsed = urlparse(database_url)
    # Connect to the server's maintenance database: the test database is created later.
    admin_url = parsed._replace(path="/postgres").geturl()
    try:
        psycopg.connect(admin_url, connect_timeout=5).close()
    except psycopg.Error as error:
        problems.append(
            f"PostgreSQL is unreachable at {parsed.hostname}:{parsed.port or 5432} ({error}).\n"
            "  Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) "
            "or set DATABASE_URL."
        )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=5).ping()
    except redis.RedisError as error:
        problems.append(
            f"Redis is unreachable at {redis_url} ({error}).\n"
            "  Start it (e.g. `redis-server --daemonize yes`) or set REDIS_URL."
        )
    for problem in problems:
        print(f"make: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
