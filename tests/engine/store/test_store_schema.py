"""The models and the migrations describe the same schema: a store built by `klaxon db
upgrade` is the one the code is written against (on PostgreSQL, less the monthly partitions of
`events`, which only the migrations know)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.store.db import Database
from engine.store.models import Base


def _names(diff: object) -> str:
    return repr(diff[0] if isinstance(diff, list) else diff)


def test_the_migrated_store_matches_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    if db.engine.dialect.name == "postgresql":
        # Partitioned by month: partitions are tables of their own, and the unique event_id
        # must include the partition key (see engine/store/migrations 0001).
        diffs = [d for d in diffs if "events_" not in _names(d) and "event_id" not in _names(d)]
    assert [_names(d) for d in diffs] == []
