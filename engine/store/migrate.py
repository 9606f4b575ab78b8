"""`klaxon db upgrade`: bring a store's schema to the latest Alembic revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from engine.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "heads") -> str:
    """Apply every migration up to `revision`; return the revision the store is at."""
    cfg = _config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(db) or ""


def current_revision(db: Database) -> str | None:
    """The store's revision(s), comma-separated when several branches are applied."""
    with db.engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    return ",".join(sorted(script.get_heads()))


def is_current(db: Database) -> bool:
    return current_revision(db) == head_revision()
