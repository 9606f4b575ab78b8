"""Real receivers on 127.0.0.1 (HTTP, SMTP, MQTT), a clock tests move, and an alert pipeline.

`pipeline` fires and resolves alerts the way production does: events posted to the API, a
worker step with the notify hook, then the deliverer; its clock is the notifier's wall clock.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday, 11:00 in Berlin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


# ---------------------------------------------------------------- the clock


class FakeClock:
    """The notifier's wall clock, moved by the test."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# ---------------------------------------------------------------- HTTP


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    @property
    def text(self) -> str:
        """The message text, whichever way Apprise posted it."""
        if self.headers.get("content-type", "").startswith("application/json"):
            data = self.json
            return f"{data.get('title', '')}\n{data.get('message', '')}"
        form = self.form
        return f"{form.get('title', '')}\n{form.get('message', '')}"


@dataclass
class HttpReceiver:
    """An HTTP server that records every request; it can go down and come back on its port."""

    port: int = field(default_factory=free_port)
    status: int = 200
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body, time.monotonic()))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path.startswith(path)]


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


# ---------------------------------------------------------------- SMTP


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1, keeping every message it is given."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.port = free_port()
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def url(self, to: str = "oncall@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=alerts@example.com&to={to}"


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    receiver.controller.start()
    yield receiver
    receiver.controller.stop()


# ---------------------------------------------------------------- MQTT


class MqttSubscriber:
    """A paho client subscribed to one topic on the local Mosquitto."""

    def __init__(self, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.topic = topic
        self.messages: list[bytes] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"klaxon-test-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.append(msg.payload)

    def url(self) -> str:
        return f"mqtt://127.0.0.1:1883/{self.topic}"


@pytest.fixture
def mqtt() -> Iterator[MqttSubscriber]:
    """Subscribed to a fresh topic on Mosquitto at 127.0.0.1:1883 (skipped without it; CI fails)."""
    sub = MqttSubscriber(f"klaxon/test/{uuid.uuid4().hex[:8]}")
    try:
        sub.client.connect("127.0.0.1", 1883, keepalive=30)
    except OSError as err:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(
                f"Mosquitto is not reachable at 127.0.0.1:1883: {err} (CI=true requires it)"
            )
        pytest.skip(f"Mosquitto is not reachable at 127.0.0.1:1883: {err}")
    sub.client.loop_start()
    assert sub.ready.wait(5), "the MQTT subscription was not acknowledged"
    yield sub
    sub.client.loop_stop()
    sub.client.disconnect()


# ---------------------------------------------------------------- the pipeline


@dataclass
class Pipeline:
    """Alerts fired through the API and a worker; notifications sent by a Deliverer."""

    api: Any
    db: Any
    settings: Any
    clock: FakeClock
    worker: Any = None
    deliverer: Any = None

    def fire(
        self, title: str, *, severity: str = "high", status: str = "firing", **fields: Any
    ) -> None:
        self.post([{"title": title, "severity": severity, "status": status, **fields}])

    def resolve(self, title: str, **fields: Any) -> None:
        self.fire(title, status="resolved", **fields)

    def post(self, events: list[dict[str, Any]]) -> None:
        body = [{"kind": "alert", "service": "api", **e} for e in events]
        r = self.api.post("/api/v1/events", json=body)
        assert r.status_code in (200, 202), r.text
        while self.worker.step():
            pass

    def deliver(self) -> Any:
        """Every round due now (stops when a round claims nothing)."""
        from engine.notify.deliver import Round

        total = Round()
        for _ in range(50):
            r = self.deliverer.deliver_due()
            for name in total.__dataclass_fields__:
                setattr(total, name, getattr(total, name) + getattr(r, name))
            if r.claimed == 0:
                break
        return total

    def add_channel(self, name: str, url: str, **kwargs: Any) -> dict[str, Any]:
        r = self.api.post("/api/v1/channels", json={"name": name, "url": url, **kwargs})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api.get("/api/v1/alerts", params={"limit": 1000}).json()["items"])

    def notifications(self, **params: Any) -> list[dict[str, Any]]:
        r = self.api.get("/api/v1/notifications", params={"limit": 1000, **params})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])


@pytest.fixture
def make_pipeline(
    api: Any, db: Any, settings: Any, clock: FakeClock, tmp_path: Path
) -> Iterator[Callable[..., Pipeline]]:
    """make_pipeline(rules_text, **settings_overrides) → a Pipeline on the test's store."""
    from engine.notify.deliver import Deliverer
    from engine.notify.enqueue import NotifyHook
    from engine.worker import Worker

    made: list[Pipeline] = []

    def make(rules: str, **overrides: Any) -> Pipeline:
        path = tmp_path / f"rules-{len(made)}.klx"
        path.write_text(rules, encoding="utf-8")
        s = replace(settings, rules_file=str(path), **{"retry_base_s": 10.0, **overrides})
        p = Pipeline(api, db, s, clock)
        p.worker = Worker(db, s, hooks=[NotifyHook(s, clock)])
        p.deliverer = Deliverer(db, s, clock)
        made.append(p)
        return p

    yield make
    for p in made:
        p.deliverer.close()


@dataclass
class People:
    """Teams and users straight into the store (their own API belongs to another module)."""

    db: Any

    def team(self, name: str, **values: Any) -> None:
        from sqlalchemy import insert

        from engine.store.models import Team

        with self.db.connect() as conn:
            conn.execute(insert(Team).values(name=name, created_at=START, **values))

    def user(self, email: str, **values: Any) -> None:
        from sqlalchemy import insert

        from engine.store.models import User

        values = {"name": email.split("@")[0], "role": "operator", **values}
        with self.db.connect() as conn:
            conn.execute(insert(User).values(email=email, created_at=START, **values))


@pytest.fixture
def people(db: Any) -> People:
    return People(db)


@pytest.fixture
def wait() -> Callable[..., bool]:
    """wait(check, timeout=5.0): poll until check() is true (for receivers in other threads)."""
    return wait_until
