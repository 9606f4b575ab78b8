"""Settings from `KLAXON_*` environment variables, all optional on the embedded default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.errors import EngineError

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(EngineError, ValueError):
    """A `KLAXON_*` variable holds a value Klaxon cannot use; the message names it."""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"KLAXON_{name}", default)


def _int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"KLAXON_{name} must be a whole number, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"KLAXON_{name} must be a number, got {raw!r}") from None


def _queue_url(raw: str) -> str:
    if raw != "sql":
        raise SettingsError(
            f"KLAXON_QUEUE_URL must be 'sql' (the SQL inbox), got {raw!r}: "
            "the Redis Streams queue of DESIGN.md §9 is not built yet"
        )
    return raw


@dataclass(frozen=True)
class Settings:
    """Every setting, its environment variable and its meaning (README lists them too)."""

    data_dir: Path = field(
        metadata={"env": "DATA_DIR", "doc": "folder for the embedded database and exports"}
    )
    database_url: str = field(
        metadata={"env": "DATABASE_URL", "doc": "SQLAlchemy URL; SQLite under data/ by default"}
    )
    queue_url: str = field(
        metadata={
            "env": "QUEUE_URL",
            "doc": "the ingest queue: sql (a table in the store, the only one so far)",
        }
    )
    secret_key: str = field(
        metadata={
            "env": "SECRET_KEY",
            "doc": "encrypts channel secrets and signs sessions",
            "secret": True,
        }
    )
    batch_size: int = field(
        metadata={"env": "BATCH_SIZE", "doc": "most events the worker takes per batch"}
    )
    batch_wait_ms: int = field(
        metadata={
            "env": "BATCH_WAIT_MS",
            "doc": "how often an idle worker moves its clock on (events are taken within 20 ms)",
        }
    )
    checkpoint_seconds: float = field(
        metadata={
            "env": "CHECKPOINT_SECONDS",
            "doc": "the worker saves its engine state at least this often while it works; the "
            "steps in between are journaled with their results and replayed on restart",
        }
    )
    checkpoint_events: int = field(
        metadata={
            "env": "CHECKPOINT_EVENTS",
            "doc": "... or once this many events were journaled since the last save",
        }
    )
    max_body_bytes: int = field(
        metadata={
            "env": "MAX_BODY_BYTES",
            "doc": "largest request body the API accepts (413 above)",
        }
    )
    rate_limit_per_min: int = field(
        metadata={"env": "RATE_LIMIT_PER_MIN", "doc": "requests per minute per API key (429 above)"}
    )
    api_url: str = field(metadata={"env": "API_URL", "doc": "where the UI and CLI reach the API"})
    rules_file: str = field(
        metadata={
            "env": "RULES_FILE",
            "doc": "rules loaded into an empty store (default: the shipped rules)",
        }
    )
    session_minutes: int = field(
        metadata={
            "env": "SESSION_MINUTES",
            "doc": "a session ends after this many minutes unused (web app; API refresh tokens)",
        }
    )
    group_wait_s: float = field(
        metadata={
            "env": "GROUP_WAIT_S",
            "doc": "notifications: how long a new group collects alerts before its first message",
        }
    )
    group_interval_s: float = field(
        metadata={
            "env": "GROUP_INTERVAL_S",
            "doc": "notifications: least time between two messages of a group (0: no grouping)",
        }
    )
    repeat_interval_s: float = field(
        metadata={
            "env": "REPEAT_INTERVAL_S",
            "doc": "notifications: remind of still-firing, unacknowledged alerts this often",
        }
    )
    retry_base_s: float = field(
        metadata={
            "env": "RETRY_BASE_S",
            "doc": "notifications: first retry delay, doubled for each of the 5 attempts",
        }
    )
    notify_threads: int = field(
        metadata={
            "env": "NOTIFY_THREADS",
            "doc": "notifications: messages sent at once by a worker",
        }
    )

    @classmethod
    def load(cls) -> Settings:
        data_dir = Path(_env("DATA_DIR", str(ROOT / "data")))
        database_url = _env("DATABASE_URL", f"sqlite:///{data_dir / 'klaxon.db'}")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            queue_url=_queue_url(_env("QUEUE_URL", "sql")),
            secret_key=_env("SECRET_KEY", ""),
            # SQLite's one writer lock is held while a batch is stored, and the API waits for it;
            # PostgreSQL's writers do not wait, and a larger batch spreads each pass's fixed
            # cost: with a backlog, 20,000 stored 8,400 -> 11,400-13,100 alerts/s (BENCHMARKS.md).
            batch_size=_int("BATCH_SIZE", 5000 if database_url.startswith("sqlite") else 20_000),
            batch_wait_ms=_int("BATCH_WAIT_MS", 200),
            checkpoint_seconds=_float("CHECKPOINT_SECONDS", 10.0),
            checkpoint_events=_int("CHECKPOINT_EVENTS", 100_000),
            max_body_bytes=_int("MAX_BODY_BYTES", 10 * 1024 * 1024),
            rate_limit_per_min=_int("RATE_LIMIT_PER_MIN", 6000),
            api_url=_env("API_URL", "http://127.0.0.1:8080"),
            rules_file=_env("RULES_FILE", str(ROOT / "engine" / "rules" / "default.klx")),
            session_minutes=_int("SESSION_MINUTES", 60),
            group_wait_s=_float("GROUP_WAIT_S", 0.0),
            group_interval_s=_float("GROUP_INTERVAL_S", 60.0),
            repeat_interval_s=_float("REPEAT_INTERVAL_S", 4 * 3600.0),
            retry_base_s=_float("RETRY_BASE_S", 15.0),
            notify_threads=_int("NOTIFY_THREADS", 8),
        )

    def masked(self) -> dict[str, Any]:
        """The effective settings for `klaxon config`, secrets and passwords masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret"):
                value = "****" if value else "(not set: a key is generated under data/)"
            elif f.name == "database_url":
                value = mask_url(str(value))
            out[f"KLAXON_{f.metadata['env']}"] = str(value)
        return out


def mask_url(url: str) -> str:
    """`postgresql://user:pw@host/db` → `postgresql://user:****@host/db`."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:****@{host}"
    return url


def settings() -> Settings:
    return Settings.load()
