"""DuckDB over the snapshots: one in-memory database per process, views that follow the manifest.

    wh = warehouse(db, settings.data_dir)
    frame = wh.frame("select severity, count(*) n from alerts group by all")

Every query runs on its own cursor, so threads (FastAPI's pool) share one warehouse. Before a
query the snapshot is refreshed if it is older than `max_age_s`; if another thread or process
is refreshing, the query uses the snapshot as it is rather than wait.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from engine.analytics.errors import AnalyticsError
from engine.analytics.paths import parquet_list, quote
from engine.analytics.rollup import ROLLUP_VERSION, SCHEMAS, SIDECARS, Targets
from engine.analytics.snapshot import Manifest, Snapshots, TableState, sidecar
from engine.analytics.tables import TABLES, TableSpec
from engine.store.db import Database

DEFAULT_MAX_AGE_S = 5.0


@dataclass(frozen=True)
class TableFiles:
    """One manifest's files of a table, for questions that read files one by one."""

    sql: str  # the table as DuckDB sees it (the view's query)
    parts: list[Path]
    delta: Path | None
    touched: list[Path]  # the partitions whose rows the delta replaces
    rolled_up: bool  # every file has its sidecars, of this Klaxon's rollup version

    @staticmethod
    def sidecar(data: Path, kind: str) -> Path:
        """The `kind` rollup sidecar of a data file (see rollup.SIDECARS)."""
        return data.with_name(sidecar(data.name, kind))


class Warehouse:
    """Queries over one store's snapshots."""

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        use_rollups: bool = True,
    ) -> None:
        self.db = db
        self.snapshots = Snapshots(db, data_dir)
        self.max_age_s = max_age_s
        self.use_rollups = use_rollups  # False: every question by the exact query (tests)
        self._con = duckdb.connect(config={"preserve_insertion_order": False})
        self._bound: int | None = None
        self._rolled: dict[str, bool] = {}
        self._sla_targets: Targets | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- freshness

    def refresh(self, *, compact: bool | None = None) -> Manifest:
        manifest = self.snapshots.refresh(compact=compact)
        assert manifest is not None  # a blocking refresh always returns one
        return manifest

    def ensure_fresh(self, max_age_s: float | None = None) -> Manifest:
        """The current manifest, refreshed first if it is older than `max_age_s`."""
        limit = self.max_age_s if max_age_s is None else max_age_s
        manifest = self.snapshots.manifest()
        if manifest is None:
            return self.refresh()
        if manifest.age_s > limit:
            newer = self.snapshots.refresh(blocking=False)
            if newer is not None:
                return newer
        return manifest

    # ---------------------------------------------------------------- views

    def _view_sql(self, spec: TableSpec, state: TableState) -> str:
        """Partitions, minus the delta's ids where the delta replaces rows, plus the delta."""
        path = self.snapshots.path
        plain = [path(p.file) for n, p in sorted(state.parts.items()) if n not in state.touched]
        touched = [path(state.parts[n].file) for n in state.touched if n in state.parts]
        pieces = []
        if plain:
            pieces.append(f"SELECT * FROM read_parquet({parquet_list(plain)})")
        if touched and state.delta:
            delta = quote(path(state.delta))
            pieces.append(
                f"SELECT * FROM read_parquet({parquet_list(touched)}) "
                f"WHERE id NOT IN (SELECT id FROM read_parquet({delta}))"
            )
        if state.delta:
            pieces.append(f"SELECT * FROM read_parquet({quote(path(state.delta))})")
        if not pieces:
            pieces.append(f"SELECT * FROM read_parquet({quote(self.snapshots.empty_file(spec))})")
        return " UNION ALL ".join(pieces)

    def _bind(self, manifest: Manifest) -> None:
        with self._lock:
            if self._bound == manifest.generation:
                return
            for spec in TABLES.values():
                state = manifest.tables.get(spec.name) or TableState()
                self._con.execute(
                    f"CREATE OR REPLACE VIEW {spec.name} AS {self._view_sql(spec, state)}"
                )
            self._sla_targets = manifest.sla_targets
            for table, kinds in SIDECARS.items():
                state = manifest.tables.get(table) or TableState()
                self._rolled[table] = state.rolled_up and manifest.rollups == ROLLUP_VERSION
                for kind, schema in zip(kinds, SCHEMAS[table], strict=True):
                    self._con.execute(
                        f"CREATE OR REPLACE VIEW {table}_{kind} AS "
                        f"{self._rollup_sql(state, kind, schema)}"
                    )
            self._bound = manifest.generation

    def _rollup_sql(self, state: TableState, kind: str, schema: dict[str, pl.DataType]) -> str:
        """The sidecars of every file (the delta's subtract what it replaces), or no rows."""
        files = [p.file for p in state.parts.values()] + ([state.delta] if state.delta else [])
        if files and state.rolled_up:
            paths = [self.snapshots.path(sidecar(f, kind)) for f in files]
            return f"SELECT * FROM read_parquet({parquet_list(paths)})"
        types = {pl.Datetime("us"): "TIMESTAMP", pl.String(): "VARCHAR", pl.Int64(): "BIGINT"}
        columns = ", ".join(
            f"NULL::{types.get(t, 'INTEGER')} AS {name}" for name, t in schema.items()
        )
        return f"SELECT {columns} WHERE false"

    def rolled_up(self, table: str = "alerts") -> bool:
        """Whether the rollup views of `table` (alerts_daily, …) answer for the whole table."""
        if not self.use_rollups:
            return False
        self._bind(self.ensure_fresh())
        return self._rolled.get(table, False)

    def files(self, table: str) -> TableFiles:
        """The files of `table` in the current manifest (refreshed first if it is stale)."""
        manifest = self.ensure_fresh()
        state = manifest.tables.get(table) or TableState()
        path = self.snapshots.path
        return TableFiles(
            sql=self._view_sql(TABLES[table], state),
            parts=[path(p.file) for _, p in sorted(state.parts.items())],
            delta=path(state.delta) if state.delta else None,
            touched=[path(state.parts[n].file) for n in state.touched if n in state.parts],
            rolled_up=self.use_rollups and state.rolled_up and manifest.rollups == ROLLUP_VERSION,
        )

    def spans(self, paths: list[Path], first: str, last: str) -> dict[Path, tuple[Any, Any]]:
        """Per file of `paths` (sidecars): the least `first` and greatest `last` it holds."""
        if not paths:
            return {}
        frame = self.frame(
            f"SELECT filename, min({first}) AS a, max({last}) AS b "
            f"FROM read_parquet({parquet_list(paths)}, filename = true) GROUP BY filename",
            fresh=False,
        )
        return {Path(r["filename"]): (r["a"], r["b"]) for r in frame.iter_rows(named=True)}

    def sla_targets(self) -> Targets | None:
        """The SLA targets the rollups count breaches of (None: no rollups)."""
        return self._sla_targets if self.rolled_up() else None

    # ---------------------------------------------------------------- queries

    def frame(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        *,
        fresh: bool = True,
        **frames: pl.DataFrame,
    ) -> pl.DataFrame:
        """Run `sql` over the snapshot's views (and any Polars frames passed by name)."""
        manifest = self.ensure_fresh() if fresh else (self.snapshots.manifest() or self.refresh())
        self._bind(manifest)
        cur = self._con.cursor()
        try:
            for name, df in frames.items():
                cur.register(name, df)
            frame: pl.DataFrame = cur.sql(sql, params=params or {}).pl()
            return _plain(frame)
        except duckdb.Error as err:
            raise AnalyticsError(f"analytics query failed: {err}") from err
        finally:
            cur.close()

    def reader(
        self, sql: str, params: dict[str, Any] | None = None, *, batch_rows: int = 100_000
    ) -> Any:
        """A pyarrow RecordBatchReader over `sql`, for streaming large results (exports)."""
        self._bind(self.ensure_fresh())
        cur = self._con.cursor()
        try:
            return cur.sql(sql, params=params or {}).to_arrow_reader(batch_rows)
        except duckdb.Error as err:
            cur.close()
            raise AnalyticsError(f"analytics query failed: {err}") from err

    def close(self) -> None:
        self._con.close()


def _plain(frame: pl.DataFrame) -> pl.DataFrame:
    """DuckDB's sums are HUGEINT and some averages DECIMAL: back to Int64 and Float64."""
    casts = {
        name: pl.Int64 if dtype == pl.Int128 else pl.Float64
        for name, dtype in frame.schema.items()
        if dtype == pl.Int128 or isinstance(dtype, pl.Decimal)
    }
    return frame.cast(casts) if casts else frame  # type: ignore[arg-type]


_WAREHOUSES: dict[tuple[str, str], Warehouse] = {}
_GUARD = threading.Lock()


def warehouse(db: Database, data_dir: Path) -> Warehouse:
    """The process's warehouse for a store (one DuckDB database, shared by threads)."""
    key = (db.url, str(Path(data_dir).resolve()))
    with _GUARD:
        found = _WAREHOUSES.get(key)
        if found is None or found.db is not db:
            found = Warehouse(db, Path(data_dir))
            _WAREHOUSES[key] = found
        return found
