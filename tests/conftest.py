"""Options and fixtures shared by the whole test suite.

Stores: `db` runs a test on SQLite (a file in tmp_path) and, as `db[postgres]`, on the
PostgreSQL at KLAXON_TEST_DATABASE_URL (default the local server, database `test`), in a
database of its own made for this run. Without that server the postgres half is skipped,
except under CI=true, where a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

PG_URL = os.environ.get("KLAXON_TEST_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KLAXON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Property tests draw new examples on every run. Under CI a failure also prints the
# @reproduce_failure blob that replays its exact example on another machine (a clean clone
# has no example database to find it in).
settings.register_profile("ci", print_blob=True)
if IN_CI:
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files (tests/dsl/golden) from the current output instead of comparing",
    )


def unavailable(what: str, why: object) -> None:
    """Skip a test whose server is missing, or fail it under CI=true."""
    message = f"{what} is not reachable: {why}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true requires it)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own KLAXON_DATA_DIR, so no test touches data/ or another's key."""
    if "KLAXON_DATA_DIR" not in os.environ or os.environ.get("KLAXON_TEST_KEEP_DATA_DIR") != "1":
        monkeypatch.setenv("KLAXON_DATA_DIR", str(tmp_path_factory.mktemp("klaxon-data")))
    monkeypatch.setenv("KLAXON_SECRET_KEY", "test-secret-key-for-klaxon-tests-only")
    monkeypatch.delenv("KLAXON_DATABASE_URL", raising=False)


# ---------------------------------------------------------------- stores


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    from engine.store.db import Database
    from engine.store.migrate import upgrade

    path = tmp_path_factory.mktemp("template") / "klaxon.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_url() -> Iterator[str]:
    """A fresh database on the test server, migrated once, dropped at the end."""
    from engine.store.db import Database, normalize_url
    from engine.store.migrate import upgrade

    admin_url = normalize_url(PG_URL)
    name = f"klaxon_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as err:
        unavailable("PostgreSQL", err)
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    upgrade(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version' AND left(tablename, 7) <> 'events_'"
            )
        ]
        if tables:
            conn.exec_driver_sql(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
            )
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "klaxon.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    path = tmp_path / "klaxon.db"
    shutil.copy(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def db(db_url: str) -> Iterator[object]:
    """The store, on SQLite and on PostgreSQL."""
    from engine.store.db import Database

    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> object:
    from engine.config import Settings

    return replace(Settings.load(), database_url=db_url, data_dir=tmp_path)


@pytest.fixture
def api(settings: object, db: object) -> Iterator[object]:
    """An in-process client against the real app and store, with an all-scopes API key.

    `api.key` is the key; requests made through `api` send it unless a test overrides the
    Authorization header.
    """
    from fastapi.testclient import TestClient

    from engine.api.app import create_app
    from engine.auth.keys import create_key

    app = create_app(settings, db)  # type: ignore[arg-type]
    key = create_key(db, name="tests", scopes=["ingest", "read", "write", "admin"])  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {key.token}"}) as client:
        client.key = key.token  # type: ignore[attr-defined]
        client.app_state = app.state  # type: ignore[attr-defined]
        yield client
