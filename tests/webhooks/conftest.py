"""Fixtures for the webhooks tests: a real HTTP receiver on 127.0.0.1, a controllable
clock, endpoints made through the services."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from membership_site.actors import Actor
from webhooks import services
from webhooks.models import Delivery, WebhookEndpoint

SYSTEM = Actor.system("tests")


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """A threaded HTTP server recording every request. ``replies`` are used in order (the
    last one repeats); ``verify`` runs on each request in the server thread."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret  # when set, requests that do not verify get 401
        self.rejected: list[str] = []
        self.requests: list[ReceivedRequest] = []
        self.replies: list[Reply] = [Reply()]
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    index = min(len(receiver.requests), len(receiver.replies)) - 1
                    reply = receiver.replies[index]
                if reply.delay:
                    time.sleep(reply.delay)
                if receiver.secret is not None:
                    try:
                        Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                    except WebhookVerificationError as error:
                        receiver.rejected.append(str(error))
                        reply = Reply(status=401, body=b"bad signature")
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def reply(self, *replies: Reply | int) -> None:
        self.replies = [r if isinstance(r, Reply) else Reply(status=r) for r in replies]

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def make_receiver():
    servers: list[Receiver] = []

    def _make() -> Receiver:
        server = Receiver().start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        server.stop()


@pytest.fixture
def local_urls(settings):
    """Receivers on 127.0.0.1 over http are allowed (tests and development only)."""
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOKS_REQUIRE_HTTPS = False
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    return settings


@pytest.fixture
def make_endpoint(program, local_urls) -> Callable[..., services.EndpointWithSecret]:
    def _make(url: str, *, program_id: int | None = None, **fields) -> services.EndpointWithSecret:
        return services.endpoint_create(program_id=program_id or program.pk, url=url, actor=SYSTEM, **fields)

    return _make


class Clock:
    """``timezone.now`` under the test's control."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    # Starts at the real time, so that signatures made "now" still verify.
    fake = Clock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(timezone, "now", fake)
    return fake


def deliveries_of(endpoint: WebhookEndpoint):
    return Delivery.objects.filter(endpoint=endpoint).order_by("id")
