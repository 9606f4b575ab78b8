"""How store data reaches DuckDB: incremental Parquet snapshots under KLAXON_DATA_DIR/analytics.

DuckDB 2.0 cannot load its sqlite/postgres extensions here (STACK.md), and reading the store at
query time costs about 8 s per million alerts on SQLite. So each table is kept as Parquet:

    analytics/<store>/manifest.json        which files make up each table (replaced atomically)
    analytics/<store>/alerts/p<N>-g<G>.parquet   base partitions: ids (N·1M, (N+1)·1M]
    analytics/<store>/alerts/delta-g<G>.parquet  rows changed or added since the last compaction

A refresh reads only what changed (alerts by `updated_at`, events past the highest id,
notifications not yet settled) through `Database.read()`, so it never blocks ingestion, and
rewrites the small delta file. The table DuckDB sees is the partitions, minus the delta's ids
in the few partitions the delta touches, plus the delta. When the delta grows past
COMPACT_ROWS it is folded into the partitions. Any process may refresh; a file lock keeps it to
one at a time, and readers only ever follow the manifest.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from sqlalchemy import Connection

from engine.analytics import models as _models  # noqa: F401 - the index refreshes use
from engine.analytics.errors import AnalyticsError
from engine.analytics.reader import read_where, scalar
from engine.analytics.rollup import (
    ROLLUP_VERSION,
    SIDECARS,
    Rollups,
    Targets,
    difference,
    table_rollups,
)
from engine.analytics.tables import TABLES, TableSpec
from engine.store.db import Database

FORMAT = 2  # 2: notifications carry their alert's team
PART_IDS = 1_000_000  # ids per base partition
COMPACT_ROWS = 200_000  # fold the delta into the partitions past this many rows
MARGIN = timedelta(minutes=5)  # re-read changes this far back: a transaction still open then
SLACK_IDS = 10_000  # re-read this many ids back on append tables, for the same reason
GRACE_S = 600.0  # keep replaced files this long for queries that still read them
ROLLED_UP = set(SIDECARS)  # tables with per-day rollup sidecars (engine/analytics/rollup.py)


@dataclass
class Part:
    file: str
    rows: int
    max_id: int
    rollup: bool = False  # its rollup sidecars are written (alerts only)


@dataclass
class TableState:
    parts: dict[int, Part] = field(default_factory=dict)
    delta: str | None = None
    delta_rows: int = 0
    touched: list[int] = field(default_factory=list)  # partitions whose rows the delta replaces
    hi_id: int = 0
    since: str | None = None  # naive UTC: rows updated at or after it are read again
    unsettled: list[int] = field(default_factory=list)
    delta_rollup: bool = False  # the delta's rollup sidecars (its rows minus those it replaces)

    @classmethod
    def of(cls, data: dict[str, Any]) -> TableState:
        parts = {int(k): Part(**v) for k, v in data.get("parts", {}).items()}
        return cls(**{**data, "parts": parts})

    def files(self) -> list[str]:
        files = [f for p in self.parts.values() for f in [p.file, *_sidecars(p.file, p.rollup)]]
        if self.delta:
            files += [self.delta, *_sidecars(self.delta, self.delta_rollup)]
        return files

    @property
    def rolled_up(self) -> bool:
        """Every file has its rollups: the rollup views answer for the whole table."""
        return all(p.rollup for p in self.parts.values()) and (
            self.delta is None or self.delta_rollup
        )


def sidecar(file: str, kind: str) -> str:
    """The `kind` rollup sidecar of a snapshot file (see rollup.SIDECARS)."""
    return file.removesuffix(".parquet") + f".{kind}.parquet"


def _sidecars(file: str, present: bool) -> list[str]:
    return [sidecar(file, k) for k in SIDECARS[file.split("/")[0]]] if present else []


@dataclass
class Manifest:
    generation: int
    refreshed_at: str
    polars: str
    tables: dict[str, TableState]
    format: int = FORMAT
    retired: dict[str, float] = field(default_factory=dict)  # file → when it stopped being used
    sla_targets: Targets | None = None  # the SLA targets the alerts rollups count breaches of
    rollups: int = 0  # ROLLUP_VERSION of the sidecars

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)

    @classmethod
    def of(cls, data: dict[str, Any]) -> Manifest:
        tables = {k: TableState.of(v) for k, v in data["tables"].items()}
        return cls(**{**data, "tables": tables})

    @property
    def age_s(self) -> float:
        return (datetime.now(UTC) - datetime.fromisoformat(self.refreshed_at)).total_seconds()


def store_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _part_of(ids: pl.Expr) -> pl.Expr:
    return (ids - 1) // PART_IDS


def _naive(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _time_literal(dialect: str, text: str) -> str:
    return f"TIMESTAMPTZ '{text}+00'" if dialect == "postgresql" else f"'{text}'"


class Snapshots:
    """The Parquet snapshots of one store."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.root = Path(data_dir) / "analytics" / store_key(db.url)
        self._thread_lock = threading.Lock()
        self.targets: Targets | None = None  # SLA targets for the rollups (read at refresh)

    # ---------------------------------------------------------------- reading the manifest

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> Manifest | None:
        try:
            data = orjson.loads(self.manifest_path.read_bytes())
        except FileNotFoundError:
            return None
        manifest = Manifest.of(data)
        if manifest.format != FORMAT or manifest.polars != pl.__version__:
            return None  # written by another version: rebuilt on the next refresh
        return manifest

    def path(self, relative: str) -> Path:
        return self.root / relative

    def scan(self, name: str, manifest: Manifest | None = None) -> pl.LazyFrame:
        """A table as a Polars LazyFrame, as DuckDB's view sees it (faster for whole rows)."""
        spec = TABLES[name]
        manifest = manifest or self.manifest()
        state = manifest.tables.get(name) if manifest else None
        if state is None:
            return spec.empty().lazy()
        frames = []
        parts = sorted(state.parts.items())
        plain = [self.path(p.file) for n, p in parts if n not in state.touched]
        if plain:
            frames.append(pl.scan_parquet(plain))
        if state.delta:
            delta = pl.scan_parquet(self.path(state.delta))
            touched = [self.path(state.parts[n].file) for n in state.touched if n in state.parts]
            if touched:
                replaced = delta.select("id")
                frames.append(pl.scan_parquet(touched).join(replaced, on="id", how="anti"))
            frames.append(delta)
        return pl.concat(frames) if frames else spec.empty().lazy()

    def empty_file(self, spec: TableSpec) -> Path:
        path = self.root / spec.name / "empty.parquet"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write(spec.empty(), path)
        return path

    # ---------------------------------------------------------------- refreshing

    @contextmanager
    def _locked(self, blocking: bool) -> Iterator[bool]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as handle:
            flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
            try:
                fcntl.flock(handle.fileno(), flags)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def refresh(self, *, blocking: bool = True, compact: bool | None = None) -> Manifest | None:
        """Bring every table up to date with the store; returns the new manifest.

        With blocking=False, returns None at once if another thread or process is refreshing.
        `compact`: True folds deltas into partitions now, False never, None when they are large.
        """
        if not self._thread_lock.acquire(blocking=blocking):
            return None
        try:
            with self._locked(blocking) as held:
                if not held:
                    return None
                return self._refresh(compact)
        finally:
            self._thread_lock.release()

    def _refresh(self, compact: bool | None, *, rebuild: bool = False) -> Manifest:
        started = datetime.now(UTC)
        old = None if rebuild else self.manifest()
        generation = self._last_generation() + 1
        tables: dict[str, TableState] = {}
        try:
            with self.db.read() as conn:
                self.targets = _store_targets(conn)
                for spec in TABLES.values():
                    state = old.tables.get(spec.name) if old else None
                    if state is None:
                        state = self._build(conn, spec, generation, started)
                    else:
                        if spec.name in ROLLED_UP and old and old.rollups != ROLLUP_VERSION:
                            state = _without_rollups(state)  # sidecars of another version
                        if spec.name == "alerts" and old and old.sla_targets != self.targets:
                            state = _without_rollups(state)  # counted against other targets
                        state = self._update(conn, spec, state, generation, started)
                    if compact or (compact is None and state.delta_rows >= COMPACT_ROWS):
                        state = self._compact(spec, state, generation)
                    if spec.name in ROLLED_UP:
                        self.add_rollups(state)
                    tables[spec.name] = state
        except (OSError, pl.exceptions.PolarsError) as err:
            raise AnalyticsError(
                f"cannot write the analytics snapshot under {self.root}: {err}"
            ) from err
        manifest = Manifest(generation, started.isoformat(), pl.__version__, tables)
        manifest.sla_targets, manifest.rollups = self.targets, ROLLUP_VERSION
        manifest.retired = self._retire(old, manifest) if old else self._orphans(manifest)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_bytes(manifest.to_json())
        os.replace(tmp, self.manifest_path)
        return manifest

    def _build(
        self, conn: Connection, spec: TableSpec, generation: int, started: datetime
    ) -> TableState:
        """The whole table, a partition at a time (memory follows PART_IDS, not the table)."""
        state = TableState(since=_naive(started - MARGIN))
        hi = scalar(conn, f"SELECT max(id) FROM {spec.name}") or 0
        for p in range((hi + PART_IDS - 1) // PART_IDS):
            frame = read_where(conn, spec, f"id > {p * PART_IDS} AND id <= {(p + 1) * PART_IDS}")
            if frame.height:
                state.parts[p] = self._write_part(spec, frame, p, generation)
        state.hi_id = hi
        state.unsettled = self._unsettled(spec, None, state)
        return state

    def _changed_where(self, dialect: str, spec: TableSpec, state: TableState) -> str:
        if spec.mode == "updated":
            since = _time_literal(dialect, state.since or "1970-01-01 00:00:00.000000")
            return f"updated_at >= {since} OR id > {state.hi_id}"
        where = f"id > {max(0, state.hi_id - SLACK_IDS)}"
        if spec.mode == "settle":
            open_ = ", ".join(f"'{s}'" for s in spec.open_statuses)
            where += f" OR status IN ({open_})"
            if state.unsettled:
                ids = state.unsettled
                where += (
                    f" OR id IN ({', '.join(map(str, ids))})"
                    if len(ids) <= 1000
                    else f" OR id >= {min(ids)}"
                )
        return where

    def _update(
        self,
        conn: Connection,
        spec: TableSpec,
        state: TableState,
        generation: int,
        started: datetime,
    ) -> TableState:
        changed = read_where(conn, spec, self._changed_where(conn.dialect.name, spec, state))
        hi = max(state.hi_id, int(changed["id"].max() or 0)) if changed.height else state.hi_id  # type: ignore[arg-type]
        changed = self._differences(spec, state, changed)
        new = TableState(
            parts=state.parts,
            delta=state.delta,
            delta_rows=state.delta_rows,
            touched=state.touched,
            hi_id=hi,
            since=_naive(started - MARGIN),
            delta_rollup=state.delta_rollup,
        )
        if changed.height:
            delta = self._delta_frame(spec, state)
            delta = pl.concat(
                [delta.join(changed.select("id"), on="id", how="anti"), changed]
            ).sort("id")
            name = f"{spec.name}/delta-g{generation:08d}.parquet"
            self._write(delta, self.path(name))
            new.delta, new.delta_rows = name, delta.height
            new.touched = self._touched(state, delta)
            new.delta_rollup = False
            if spec.name in ROLLED_UP:
                self._write_delta_rollup(new, delta)
        new.unsettled = self._unsettled(spec, changed, state)
        return new

    def _delta_frame(self, spec: TableSpec, state: TableState) -> pl.DataFrame:
        return pl.read_parquet(self.path(state.delta)) if state.delta else spec.empty()

    def _current(self, state: TableState, ids: pl.Series, columns: list[str]) -> pl.DataFrame:
        """The snapshot's present `columns` for `ids` (the delta's version wins)."""
        wanted = pl.col("id").is_in(ids.implode())
        lo, hi = ids.min(), ids.max()
        frames = []
        if state.delta:
            frames.append(
                pl.scan_parquet(self.path(state.delta)).filter(wanted).select(columns).collect()
            )
        in_delta = frames[0].select("id") if frames else pl.DataFrame(schema={"id": pl.Int64})
        for p in ids.to_frame().select(_part_of(pl.col("id")).unique()).to_series().to_list():
            part = state.parts.get(int(p))
            if part is not None:
                rows = (
                    pl.scan_parquet(self.path(part.file))
                    .filter(pl.col("id").is_between(lo, hi) & wanted)
                    .select(columns)
                    .collect()
                )
                frames.append(rows.join(in_delta, on="id", how="anti"))
        return pl.concat(frames) if frames else pl.DataFrame(schema={"id": pl.Int64})

    def _differences(
        self, spec: TableSpec, state: TableState, changed: pl.DataFrame
    ) -> pl.DataFrame:
        """Drop rows the snapshot already holds as they are (re-read for safety margins)."""
        if changed.height == 0:
            return changed
        identity = {
            "updated": ["id", "updated_at"],
            "append": ["id"],
            "settle": ["id", "status", "attempts", "sent_at"],
        }[spec.mode]
        current = self._current(state, changed["id"], identity)
        if current.height == 0:
            return changed
        return changed.join(current, on=identity, how="anti", nulls_equal=True)

    def _touched(self, state: TableState, delta: pl.DataFrame) -> list[int]:
        parts = delta.select(pl.col("id"), p=_part_of(pl.col("id")))
        touched = []
        for p, part in state.parts.items():
            if parts.filter((pl.col("p") == p) & (pl.col("id") <= part.max_id)).height:
                touched.append(p)
        return sorted(touched)

    def _unsettled(
        self, spec: TableSpec, changed: pl.DataFrame | None, state: TableState
    ) -> list[int]:
        """Ids of rows not yet in a final status: read again on every refresh until they are."""
        if spec.mode != "settle":
            return []
        if changed is None:  # after a build: every partition
            frames = [
                pl.scan_parquet(self.path(p.file)).select("id", "status").collect()
                for p in state.parts.values()
            ]
        else:
            frames = []
            if state.unsettled:
                ids = pl.Series("id", state.unsettled, dtype=pl.Int64)
                frames.append(self._current(state, ids, ["id", "status"]))
            frames.append(changed.select("id", "status"))
        if not frames:
            return []
        rows = pl.concat(frames).unique("id", keep="last", maintain_order=True)
        return sorted(
            rows.filter(~pl.col("status").is_in(list(spec.final_statuses)))["id"].to_list()
        )

    # ---------------------------------------------------------------- compaction

    def _compact(self, spec: TableSpec, state: TableState, generation: int) -> TableState:
        """Fold the delta into the partitions it belongs to; the delta becomes empty."""
        if not state.delta:
            return state
        delta = self._delta_frame(spec, state).with_columns(_p=_part_of(pl.col("id")))
        parts = dict(state.parts)
        for (p,), rows in delta.partition_by("_p", as_dict=True).items():
            rows = rows.drop("_p")
            old = parts.get(int(p))
            if old is not None:
                base = pl.read_parquet(self.path(old.file)).join(
                    rows.select("id"), on="id", how="anti"
                )
                rows = pl.concat([base, rows]).sort("id")
            parts[int(p)] = self._write_part(spec, rows, int(p), generation)
        return TableState(
            parts=parts, hi_id=state.hi_id, since=state.since, unsettled=state.unsettled
        )

    def _write_part(self, spec: TableSpec, frame: pl.DataFrame, p: int, generation: int) -> Part:
        name = f"{spec.name}/p{p:06d}-g{generation:08d}.parquet"
        self._write(frame, self.path(name))
        part = Part(name, frame.height, int(frame["id"].max() or 0))  # type: ignore[arg-type]
        if spec.name in ROLLED_UP:
            self._write_rollups(name, table_rollups(spec.name, frame, self.targets))
            part.rollup = True
        return part

    def _write_rollups(self, file: str, frames: Rollups) -> None:
        for kind, frame in zip(SIDECARS[file.split("/")[0]], frames, strict=True):
            self._write(frame, self.path(sidecar(file, kind)))

    def _write_delta_rollup(self, state: TableState, delta: pl.DataFrame) -> None:
        """The delta's rollups: its rows, minus the partition rows it stands in for."""
        assert state.delta is not None
        touched = [self.path(state.parts[n].file) for n in state.touched if n in state.parts]
        removed = (
            pl.scan_parquet(touched).join(delta.lazy().select("id"), on="id", how="semi").collect()
            if touched
            else delta.clear()
        )
        table = state.delta.split("/")[0]
        self._write_rollups(state.delta, difference(table, delta, removed, self.targets))
        state.delta_rollup = True

    def add_rollups(self, state: TableState) -> bool:
        """Write the rollups files written before rollups existed lack; True if any was."""
        added = False
        for part in state.parts.values():
            if not part.rollup:
                frame = pl.read_parquet(self.path(part.file))
                table = part.file.split("/")[0]
                self._write_rollups(part.file, table_rollups(table, frame, self.targets))
                part.rollup = added = True
        if state.delta and not state.delta_rollup:
            self._write_delta_rollup(state, pl.read_parquet(self.path(state.delta)))
            added = True
        return added

    def _write(self, frame: pl.DataFrame, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        frame.write_parquet(tmp, row_group_size=122_880, statistics=True)
        os.replace(tmp, path)

    def _last_generation(self) -> int:
        """The newest generation ever written here, even by another version (file names differ)."""
        try:
            return int(orjson.loads(self.manifest_path.read_bytes()).get("generation", 0))
        except (FileNotFoundError, orjson.JSONDecodeError, AttributeError, ValueError):
            return 0

    def _orphans(self, new: Manifest) -> dict[str, float]:
        """After a rebuild, every file the new manifest does not name is retired now."""
        keep = {f for state in new.tables.values() for f in state.files()}
        now = time.time()
        found = {f"{p.parent.name}/{p.name}": now for p in self.root.glob("*/*.parquet")}
        return {
            name: t
            for name, t in found.items()
            if name not in keep and not name.endswith("/empty.parquet")
        }

    def _retire(self, old: Manifest | None, new: Manifest) -> dict[str, float]:
        """Files the new manifest dropped are deleted GRACE_S later: queries may still read them."""
        now = time.time()
        keep = {f for state in new.tables.values() for f in state.files()}
        retired = dict(old.retired) if old else {}
        if old:
            for state in old.tables.values():
                for name in state.files():
                    if name not in keep:
                        retired.setdefault(name, now)
        for name, since in list(retired.items()):
            if name in keep:
                del retired[name]
            elif now - since > GRACE_S:
                self.path(name).unlink(missing_ok=True)
                del retired[name]
        return retired

    def rebuild(self) -> Manifest:
        """Forget the snapshot and read every table again (after deletions in the store)."""
        with self._thread_lock, self._locked(True):
            return self._refresh(compact=False, rebuild=True)


def _store_targets(conn: Connection) -> Targets:
    from engine.analytics.sla import targets  # sla builds on the warehouse, which builds on this

    return targets(conn)


def _without_rollups(state: TableState) -> TableState:
    """A copy of `state` whose files are to get their rollups again."""
    parts = {n: Part(p.file, p.rows, p.max_id) for n, p in state.parts.items()}
    return TableState(**{**asdict(state), "parts": parts, "delta_rollup": False})
