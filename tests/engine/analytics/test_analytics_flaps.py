"""Flapping from the per-file `flap` sidecars equals the exact window query, on the same snapshot.

Snapshots are written by hand: several partitions whose times overlap or follow each other, and
a delta that replaces partition rows (a new title, as a repeat gives) and adds new fires before,
between and after them. Periods cut files anywhere; windows cross files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.analytics import flaps, rollup
from engine.analytics.filters import Filters
from engine.analytics.noise import flapping
from engine.analytics.snapshot import PART_IDS, Manifest, Snapshots, TableState
from engine.analytics.tables import ALERTS
from engine.analytics.warehouse import Warehouse
from engine.store.db import Database

T0 = datetime(2026, 3, 2)
_fire = st.tuples(st.sampled_from(["r1", "r2"]), st.sampled_from(["a", "b", "c"]), st.integers())


def _alerts(rows: list[tuple[int, str, str, int, str]]) -> pl.DataFrame:
    """Alerts rows from (id, rule, key, minute after T0, title)."""
    empty = ALERTS.empty()
    frame = pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "rule": [r[1] for r in rows],
            "key": [r[2] for r in rows],
            "fingerprint": [r[2] for r in rows],
            "title": [r[4] for r in rows],
            "severity": ["high"] * len(rows),
            "status": ["resolved"] * len(rows),
            "created_at": [T0 + timedelta(minutes=r[3]) for r in rows],
        },
        schema_overrides={"id": pl.Int64},
    )
    frame = frame.with_columns(
        [pl.lit(None).cast(t).alias(c) for c, t in empty.schema.items() if c not in frame.columns]
    )
    frame = frame.select([pl.col(c).cast(empty.schema[c]) for c in ALERTS.raw_schema])
    return ALERTS.derive(frame).select(empty.columns)


def _snapshot(
    folder: Path, parts: list[list[tuple[str, str, int]]], changed: list[int], added: list[Any]
) -> tuple[Warehouse, Warehouse, list[tuple[int, str, str, int, str]]]:
    """Partitions of fires, a delta retitling the `changed` rows and adding `added` fires."""
    db = Database(f"sqlite:///{folder / 'empty.db'}")
    snap = Snapshots(db, folder / "data")
    state = TableState()
    rows: dict[int, tuple[int, str, str, int, str]] = {}
    for p, fires in enumerate(parts):
        part_rows = [
            (p * PART_IDS + 1 + i, r, k, m, f"{r}/{k}@{m}") for i, (r, k, m) in enumerate(fires)
        ]
        rows |= {row[0]: row for row in part_rows}
        state.parts[p] = snap._write_part(ALERTS, _alerts(part_rows), p, 1)
        state.hi_id = state.parts[p].max_id
    delta_rows = [rows[i] for i in sorted({sorted(rows)[c % len(rows)] for c in changed})]
    delta_rows = [(i, r, k, m, f"{t} again") for i, r, k, m, t in delta_rows]
    first_new = len(parts) * PART_IDS + 1
    delta_rows += [
        (first_new + i, r, k, m, f"{r}/{k}@{m} new") for i, (r, k, m) in enumerate(added)
    ]
    if delta_rows:
        delta = _alerts(delta_rows).sort("id")
        state.delta, state.delta_rows = "alerts/delta-g00000002.parquet", delta.height
        snap._write(delta, snap.path(state.delta))
        state.touched = snap._touched(state, delta)
        snap._write_delta_rollup(state, delta)
        rows |= {row[0]: row for row in delta_rows}
    snap.root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(2, "2100-01-01T00:00:00+00:00", pl.__version__, {"alerts": state})
    manifest.rollups = rollup.ROLLUP_VERSION
    snap.manifest_path.write_bytes(manifest.to_json())
    fast = Warehouse(db, folder / "data", max_age_s=1e9)
    exact = Warehouse(db, folder / "data", max_age_s=1e9, use_rollups=False)
    return fast, exact, list(rows.values())


def _compare(fast: Warehouse, exact: Warehouse, rows: list[Any], f: Filters, **kw: Any) -> None:
    got, want = flapping(fast, f, **kw)["series"], flapping(exact, f, **kw)["series"]
    assert [{**s, "title": None} for s in got] == [{**s, "title": None} for s in want]
    for s in got:  # the title of a fire at the series' last time (ties: any of them)
        at = datetime.fromisoformat(s["last_fire"]).replace(tzinfo=None)
        last = int((at - T0).total_seconds() // 60)
        titles = {r[4] for r in rows if (r[1], r[2], r[3]) == (s["rule"], s["key"], last)}
        assert s["title"] in titles


def _period(start_m: int, length_m: int, rule: str | None) -> Filters:
    start = (T0 + timedelta(minutes=start_m)).replace(tzinfo=UTC)
    return Filters.of(start=start, end=start + timedelta(minutes=length_m), rule=rule)


@pytest.mark.hypothesis
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    n_parts=st.integers(1, 3),
    spread_m=st.integers(30, 300),  # how far apart the partitions' times start
    width_m=st.integers(20, 400),  # how long each partition's times run (overlap if > spread)
    start_m=st.integers(-60, 900),
    length_m=st.integers(1, 1200),
    rule=st.sampled_from([None, "r1"]),
    min_fires=st.integers(2, 4),
)
def test_flapping_from_sidecars_equals_the_exact_query(
    tmp_path_factory, data, n_parts, spread_m, width_m, start_m, length_m, rule, min_fires
) -> None:
    parts = []
    for p in range(n_parts):
        times = st.integers(p * spread_m, p * spread_m + width_m)
        fires = data.draw(st.lists(_fire, min_size=1, max_size=25), label=f"part {p}")
        parts.append([(r, k, data.draw(times)) for r, k, _ in fires])
    changed = data.draw(st.lists(st.integers(0, 100), max_size=6), label="changed")
    added = [
        (r, k, m % (n_parts * spread_m + width_m + 60))
        for r, k, m in data.draw(st.lists(_fire, max_size=10), label="added")
    ]
    fast, exact, rows = _snapshot(tmp_path_factory.mktemp("flaps"), parts, changed, added)
    try:
        f = _period(start_m, length_m, rule)
        _compare(fast, exact, rows, f, min_fires=min_fires, limit=1000)
        _compare(fast, exact, rows, f, min_fires=min_fires, limit=2)
    finally:
        fast.close()
        exact.close()


def test_windows_across_partition_boundaries_and_the_delta(tmp_path) -> None:
    # r1/a fires twice at the end of partition 0, once at the start of partition 1 and once
    # more in the delta: 4 fires within the hour, though no file holds more than 2 of them.
    parts = [
        [("r1", "a", 0), ("r1", "a", 100), ("r1", "a", 110), ("r2", "b", 105)],
        [("r1", "a", 130), ("r2", "b", 300), ("r2", "b", 301), ("r2", "b", 302)],
        [("r2", "b", 330), ("r2", "b", 500), ("r2", "b", 501)],
    ]
    fast, exact, rows = _snapshot(tmp_path, parts, changed=[1], added=[("r1", "a", 140)])
    try:
        whole = _period(-10, 600, None)
        assert flaps.top_series(fast, whole, min_fires=3, window_s=3600, limit=50) is not None
        got = flapping(fast, whole, min_fires=3)["series"]
        assert [(s["rule"], s["key"], s["fires"], s["max_in_window"]) for s in got] == [
            ("r2", "b", 7, 4),  # 300, 301, 302, 330
            ("r1", "a", 5, 4),  # 100, 110, 130, 140
        ]
        assert got[0]["title"] == "r2/b@501"
        assert got[1]["title"] == "r1/a@140 new"
        _compare(fast, exact, rows, whole, min_fires=3)
        # Partition 1 whole from its sidecar, 0 and 2 cut by the period: from their rows.
        cut = _period(105, 340, None)
        assert flaps.top_series(fast, cut, min_fires=2, window_s=3600, limit=50) is not None
        _compare(fast, exact, rows, cut, min_fires=2)
        _compare(fast, exact, rows, _period(105, 340, "r2"), min_fires=2)
    finally:
        fast.close()
        exact.close()


def test_another_window_or_filter_uses_the_exact_query(tmp_path) -> None:
    fast, exact, _ = _snapshot(tmp_path, [[("r1", "a", 0), ("r1", "a", 1)]], [], [])
    try:
        f = _period(0, 60, None)
        assert flaps.top_series(fast, f, min_fires=2, window_s=600, limit=5) is None
        team = Filters.of(start=f.start, end=f.end, team="platform")
        assert flaps.top_series(fast, team, min_fires=2, window_s=3600, limit=5) is None
        assert flaps.top_series(exact, f, min_fires=2, window_s=3600, limit=5) is None
        assert flapping(fast, f, min_fires=2, window_s=600) == flapping(
            exact, f, min_fires=2, window_s=600
        )
    finally:
        fast.close()
        exact.close()


def test_an_empty_snapshot_has_no_flapping(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    snap = Snapshots(db, tmp_path / "data")
    snap.root.mkdir(parents=True)
    manifest = Manifest(1, "2100-01-01T00:00:00+00:00", pl.__version__, {"alerts": TableState()})
    manifest.rollups = rollup.ROLLUP_VERSION
    snap.manifest_path.write_bytes(manifest.to_json())
    wh = Warehouse(db, tmp_path / "data", max_age_s=1e9)
    try:
        f = _period(0, 600, None)
        assert flaps.top_series(wh, f, min_fires=2, window_s=3600, limit=5) is None
        assert flapping(wh, f)["series"] == []
    finally:
        wh.close()
        db.dispose()
