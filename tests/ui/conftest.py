"""Fixtures of the web-app tests: a demo store loaded once and copied per test, signed-in apps.

`demo_store` is a SQLite file holding `klaxon demo load` (30 days of alerts, incidents,
notifications, teams) and the demo accounts; each test gets its own copy, so tests can
acknowledge and save freely. `signed_in(role)` is an AppTest of app/main.py whose session
belongs to the demo user of that role, logged in through engine.auth.sessions like the login
page does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "app" / "main.py")
SECRET = "test-secret-key-for-klaxon-tests-only"  # tests/conftest.py sets the same for each test


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store with the demo history and the demo users, built once per run."""
    from engine.auth.demo import create_demo_users
    from engine.config import settings
    from engine.demo import load_demo
    from engine.store import rules as rules_store
    from engine.store.db import Database
    from engine.store.migrate import upgrade

    folder = tmp_path_factory.mktemp("demo-store")
    path = folder / "klaxon.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KLAXON_DATA_DIR", str(folder))
        mp.setenv("KLAXON_SECRET_KEY", SECRET)
        db = Database(f"sqlite:///{path}")
        upgrade(db)
        load_demo(db)
        with db.connect() as conn:
            rules_store.ensure_rules(conn, settings().rules_file)
        create_demo_users(db)
        _raise_fresh_alerts(db, folder)
        db.dispose()
    return path


FRESH = [
    {"title": "CheckoutErrorsHigh", "severity": "critical", "service": "checkout", "host": "web-1"},
    {"title": "QueueBacklog", "severity": "high", "service": "kafka", "host": "broker-2"},
    {"title": "DiskAlmostFull", "severity": "medium", "service": "warehouse", "host": "db-3"},
]


def _raise_fresh_alerts(db: Any, folder: Path) -> None:
    """A few active alerts made now through the real API and worker (the demo's are mostly
    handled already), so tests always have something to acknowledge."""
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from engine.api.app import create_app
    from engine.auth.keys import create_key
    from engine.config import Settings
    from engine.worker import Worker

    settings = replace(Settings.load(), database_url=db.url, data_dir=folder)
    key = create_key(db, name="ui-tests", scopes=["ingest"])
    with TestClient(
        create_app(settings, db), headers={"Authorization": f"Bearer {key.token}"}
    ) as api:
        for alert in FRESH:
            reply = api.post("/api/v1/alerts", json=alert)
            assert reply.status_code == 202, reply.text
    worker = Worker(db, settings)
    while worker.step():
        pass


@pytest.fixture
def demo_url(demo_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's copy of the demo store, as KLAXON_DATABASE_URL."""
    path = tmp_path / "klaxon.db"
    shutil.copy(demo_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("KLAXON_DATABASE_URL", url)
    return url


@pytest.fixture
def demo_db(demo_url: str) -> Iterator[Any]:
    from engine.store.db import Database

    db = Database(demo_url)
    yield db
    db.dispose()


def login_state(db: Any, role: str) -> dict[str, Any]:
    """The session state the login page leaves for the demo user of `role`."""
    import time

    from engine.auth.demo import DEMO_DOMAIN, demo_password
    from engine.auth.sessions import login

    result = login(db, f"{role}@{DEMO_DOMAIN}", demo_password(role))
    return {
        "auth.user_id": result.principal.user_id,
        "auth.session_id": result.session_id,
        "auth.email": result.principal.name,
        "auth.last_active": time.time(),
    }


@pytest.fixture
def signed_in(demo_db: Any) -> Callable[..., Any]:
    """signed_in(role="operator", page=None) → an AppTest that has run once, on `page`."""
    from streamlit.testing.v1 import AppTest

    def make(role: str = "operator", page: str | None = None) -> AppTest:
        at = AppTest.from_file(MAIN, default_timeout=30)
        for key, value in login_state(demo_db, role).items():
            at.session_state[key] = value
        if page:
            at.switch_page(_page_path(page))
        at.run()
        return at

    return make


def _page_path(name: str) -> str:
    """A page's file as AppTest.switch_page wants it: relative to the entry script."""
    return os.path.relpath(ROOT / "pages" / f"{name}.py", ROOT / "app")


def _texts(at: Any) -> str:
    """Everything the page wrote as text (markdown, captions, alerts), for assertions."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.success]
    parts += [t.value for t in at.title] + [h.value for h in at.subheader]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def session_of(demo_db: Any) -> Callable[[str], dict[str, Any]]:
    """session_of(role) → the session state a login of the demo user of `role` leaves."""
    return lambda role: login_state(demo_db, role)


@pytest.fixture
def page_path() -> Callable[[str], str]:
    return _page_path


@pytest.fixture
def texts() -> Callable[[Any], str]:
    return _texts


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Files the app offers for download, by file name, as AppTest's media storage receives them
    (the storage is real; the fixture only keeps a copy of what is put in it)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(
        self: Any, path_or_data: Any, mimetype: str, kind: Any, filename: str | None = None
    ) -> str:
        if isinstance(path_or_data, bytes) and filename:
            seen[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return seen
