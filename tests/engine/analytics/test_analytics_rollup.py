"""The per-day rollups answer exactly what the exact queries answer, on the same snapshot.

Two warehouses read one snapshot: one answers from the rollups, the other (use_rollups=False)
by the exact queries over every row. They must agree for every route the rollups serve, under
every filter (those the rollups cannot answer fall back to the exact query), after a refresh
whose delta replaces partition rows, and after compaction. Medians and p90s read from the log
histograms (past metrics.EXACT_MAX durations) are within 1% of the exact ones.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from engine.analytics import metrics, rollup
from engine.analytics.dashboard import dashboard
from engine.analytics.delivery import delivery
from engine.analytics.filters import Filters
from engine.analytics.metrics import response_times
from engine.analytics.noise import noise
from engine.analytics.sla import DEFAULT_TARGETS, sla
from engine.analytics.snapshot import Manifest, Snapshots, TableState
from engine.analytics.tables import ALERTS
from engine.analytics.teams import team_load
from engine.analytics.volume import volume
from engine.analytics.warehouse import Warehouse
from engine.store.db import Database
from engine.store.models import Alert, Notification

TEAMS = ["platform", "payments", None]
SERVICES = ["api", "db", "web"]
SOURCES = ["prometheus", "grafana", "webhook"]
RULES = ["r1", "r2", "r3", "r4"]
SEVERITIES = ["critical", "high", "medium", "low", "info"]
# Team load's zones: after-hours counts are read per 15-minute slot in each team's zone.
TEAM_ZONES = pl.DataFrame(
    {"team": ["platform", "payments"], "tz": ["Asia/Kolkata", "UTC"], "members": [2, 1]}
)
# People act under their email or their name (alerts are resolved by "klaxon").
MEMBERS = pl.DataFrame(
    {
        "team": ["platform", "payments", "platform"],
        "email": ["alice@x", "bob@x", "k@x"],
        "name": ["Alice", "Bob", "klaxon"],
        "tz": ["Europe/Berlin", "UTC", "UTC"],
    }
)


def _same(fast: Any, exact: Any, path: str = "") -> None:
    """Equal, but for the last digit of a rounded mean (integer microsecond sums vs avg)."""
    if isinstance(fast, dict) and isinstance(exact, dict):
        assert fast.keys() == exact.keys(), path
        for k in fast:
            _same(fast[k], exact[k], f"{path}.{k}")
    elif isinstance(fast, list) and isinstance(exact, list):
        assert len(fast) == len(exact), f"{path}: {fast} != {exact}"
        for i, (a, b) in enumerate(zip(fast, exact, strict=True)):
            _same(a, b, f"{path}[{i}]")
    elif isinstance(fast, float) and isinstance(exact, float):
        assert fast == pytest.approx(exact, rel=1e-9, abs=0.0011), path
    else:
        assert fast == exact, path


def _answers(wh: Warehouse, f: Filters, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        "dashboard": dashboard(wh, f, DEFAULT_TARGETS, now=now),
        "noise": noise(wh, f, limit=3),
    }
    for metric, by in (("mtta", None), ("mttr", "team"), ("mttd", "severity"), ("mttr", "rule")):
        out[f"{metric}/{by}"] = response_times(wh, f, metric, by=by)
    for by in ("source", "severity", "team", "service", "rule"):
        out[f"volume/{by}"] = volume(wh, f, by=by)
    for by in (None, "severity", "rule"):
        out[f"sla/{by}"] = sla(wh, f, DEFAULT_TARGETS, by=by, now=now)
    out["delivery"] = delivery(wh, f)
    out["teams"] = team_load(wh, f, TEAM_ZONES, MEMBERS)
    return out


def _questions(t0: datetime) -> list[Filters]:
    start, end = t0 + timedelta(hours=5, minutes=17), t0 + timedelta(days=9, hours=13)
    return [
        Filters.of(start=start, end=end),
        Filters.of(start=t0, end=t0 + timedelta(days=10), bucket="week"),
        Filters.of(start=start, end=end, team="platform"),
        Filters.of(start=start, end=end, severity="critical,high"),
        Filters.of(start=start, end=end, severity="low", service="api,db"),
        Filters.of(start=start, end=end, team="payments", rule="r2"),  # no rollup: exact
        Filters.of(start=start, end=start + timedelta(hours=20)),  # under a day: exact
    ]


def _alert(rng: random.Random, i: int, t0: datetime) -> dict[str, Any]:
    created = t0 + timedelta(seconds=rng.randrange(0, 10 * 86400))
    acked = rng.random() < 0.6
    resolved = rng.random() < 0.7
    by_rules = rng.random() < 0.5
    rule = rng.choice(RULES)
    row = {
        "id": i,
        "rule": rule,
        "key": f'{{"fingerprint":"fp{i}"}}',
        "fingerprint": f"{rule}-{i % 5}",
        "title": f"alert {i}",
        "severity": rng.choice(SEVERITIES),
        "status": "resolved" if resolved else "active",
        "is_open": not resolved,
        "source": rng.choice(SOURCES),
        "service": rng.choice(SERVICES),
        "team": rng.choice(TEAMS),
        "occurrences": rng.randrange(1, 5),
        "first_seen": created,
        "last_seen": created,
        "source_started_at": created - timedelta(seconds=rng.randrange(-30, 300)),
        "created_at": created,
        "muted_by": ["s1"] if rng.random() < 0.1 else [],
        "acknowledged_at": created + timedelta(seconds=rng.uniform(0, 900)) if acked else None,
        "acknowledged_by": "alice@x" if acked else None,
        "resolved_at": created + timedelta(seconds=rng.uniform(0, 9000)) if resolved else None,
        "resolved_by": ("klaxon" if by_rules else "bob@x") if resolved else None,
        "resolution": (
            ("auto" if by_rules else rng.choice(["fixed", "false_positive"])) if resolved else None
        ),
    }
    return row


def _notification(rng: random.Random, i: int, t0: datetime) -> dict[str, Any]:
    created = t0 + timedelta(seconds=rng.randrange(0, 10 * 86400))
    status = rng.choice(["sent", "sent", "sent", "failed", "dead", "pending"])
    return {
        "id": i,
        "alert_id": i,
        "transition": "fired",
        "target": "slack_ops",
        "channel": rng.choice(["slack_ops", "pager", "ops_email"]),
        "status": status,
        "attempts": rng.randrange(1, 4),
        "created_at": created,
        "sent_at": created + timedelta(seconds=rng.uniform(0, 30)) if status == "sent" else None,
    }


@pytest.fixture
def pair(db: Database, tmp_path: Path) -> Iterator[tuple[Warehouse, Warehouse]]:
    fast = Warehouse(db, tmp_path / "data", max_age_s=0.0)
    exact = Warehouse(db, tmp_path / "data", max_age_s=1e9, use_rollups=False)
    yield fast, exact
    fast.close()
    exact.close()


def _check(fast: Warehouse, exact: Warehouse, t0: datetime) -> None:
    assert fast.rolled_up()
    assert fast.rolled_up("notifications")
    now = t0 + timedelta(days=12)
    assert sum(rollup.slot_rows(f) is not None for f in _questions(t0)) == 3  # team load's
    for f in _questions(t0):
        _same(_answers(fast, f, now), _answers(exact, f, now))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(metrics, "EXACT_MAX", 0)  # the notifications rollups' counts
            a, b = delivery(fast, f), delivery(exact, f)
        for x, y in [(a["total"], b["total"]), *zip(a["channels"], b["channels"], strict=True)]:
            assert (x["notifications"], x["by_status"], x["attempts"], x["failure_rate"]) == (
                y["notifications"],
                y["by_status"],
                y["attempts"],
                y["failure_rate"],
            )
            assert x["latency_s"]["count"] == y["latency_s"]["count"]


@pytest.mark.slow
def test_rollups_answer_as_the_exact_queries_before_and_after_a_delta_and_compaction(
    db, store, pair
) -> None:
    fast, exact = pair
    # The answers do not depend on the store once the snapshot is read: PostgreSQL (read with
    # COPY) is compared after the delta only, SQLite at every stage (the suite's time).
    on_postgres = db.url.startswith("postgresql")
    rng = random.Random(7)
    store.alerts([_alert(rng, i, store.T0) for i in range(1, 301)])
    store.notifications([_notification(rng, i, store.T0) for i in range(1, 151)])
    fast.refresh()
    if not on_postgres:
        _check(fast, exact, store.T0)
    # Changes in place (acknowledged, resolved, moved to another team and severity) and new
    # alerts: the delta replaces partition rows and its rollups subtract theirs.
    with db.connect() as conn:
        for i in range(1, 301, 7):
            conn.execute(
                update(Alert)
                .where(Alert.id == i)
                .values(
                    severity=rng.choice(SEVERITIES),
                    team=rng.choice(TEAMS),
                    acknowledged_at=store.at(9, 23),
                    resolved_at=store.at(9, 23, 30),
                    resolved_by="klaxon",
                    resolution="auto",
                    is_open=False,
                    status="resolved",
                    updated_at=datetime.now(UTC),
                )
            )
    store.alerts([_alert(rng, i, store.T0) for i in range(301, 341)])
    with db.connect() as conn:  # pending and failed ones settle
        conn.execute(
            update(Notification)
            .where(Notification.status.in_(["pending", "failed"]))
            .values(status="sent", attempts=5, sent_at=store.at(9, 12))
        )
    store.notifications([_notification(rng, i, store.T0) for i in range(151, 171)])
    state = fast.refresh(compact=False).tables["alerts"]
    assert state.delta is not None
    assert state.delta_rollup
    assert state.touched == [0]
    _check(fast, exact, store.T0)
    # A second delta on top of the first.
    with db.connect() as conn:
        conn.execute(
            update(Alert)
            .where(Alert.id.in_([2, 3, 320]))
            .values(severity="critical", updated_at=datetime.now(UTC))
        )
    fast.refresh(compact=False)
    if not on_postgres:
        _check(fast, exact, store.T0)
    state = fast.refresh(compact=True).tables["alerts"]
    assert state.delta is None
    assert all(p.rollup for p in state.parts.values())
    if not on_postgres:
        _check(fast, exact, store.T0)


def test_histogram_quantiles_are_within_one_percent(db, store, pair, monkeypatch) -> None:
    fast, exact = pair
    rng = random.Random(3)
    store.alerts([_alert(rng, i, store.T0) for i in range(1, 401)])
    store.notifications([_notification(rng, i, store.T0) for i in range(1, 201)])
    monkeypatch.setattr(metrics, "EXACT_MAX", 0)  # histograms whatever the size
    now = store.T0 + timedelta(days=12)
    for f in _questions(store.T0)[:4]:
        for metric in ("mtta", "mttr", "mttd"):
            for by in (None, "team"):
                a, b = (response_times(w, f, metric, by=by) for w in (fast, exact))
                rows = [
                    (a["overall"], b["overall"]),
                    *list(zip(a["series"], b["series"], strict=True)),
                ]
                rows += list(zip(a.get("groups", []), b.get("groups", []), strict=True))
                for x, y in rows:
                    assert (x["count"], x["mean"]) == (y["count"], pytest.approx(y["mean"]))
                    for k in ("median", "p90"):
                        assert x[k] == pytest.approx(y[k], rel=0.0101, abs=0.002)
        a, b = (delivery(w, f) for w in (fast, exact))
        for x, y in [(a["total"], b["total"]), *zip(a["channels"], b["channels"], strict=True)]:
            assert {k: v for k, v in x.items() if k != "latency_s"} == {
                k: v for k, v in y.items() if k != "latency_s"
            }
            assert x["latency_s"]["count"] == y["latency_s"]["count"]
            assert x["latency_s"]["mean"] == pytest.approx(y["latency_s"]["mean"], abs=0.0011)
            for k in ("median", "p90"):
                want = y["latency_s"][k]
                assert x["latency_s"][k] == pytest.approx(want, rel=0.0101, abs=0.002)
        a, b = (dashboard(w, f, DEFAULT_TARGETS, now=now)["kpis"] for w in (fast, exact))
        for metric in ("mtta", "mttr", "mttd"):
            for k in ("median", "p90"):
                assert a[metric][k] == pytest.approx(b[metric][k], rel=0.0101, abs=0.002)


# ---------------------------------------------------------------- property: random snapshots

_T0 = datetime(2026, 3, 2)
_rows = st.fixed_dictionaries(
    {
        "created_s": st.integers(0, 6 * 86400),
        "severity": st.sampled_from(SEVERITIES),
        "team": st.sampled_from(TEAMS),
        "rule": st.sampled_from(RULES),
        "tta_s": st.one_of(st.none(), st.floats(0, 5000)),
        "ttr_s": st.one_of(st.none(), st.floats(0, 90000)),
        "auto": st.booleans(),
        "occurrences": st.integers(1, 4),
    }
)


def _frame(rows: list[dict[str, Any]], first_id: int) -> pl.DataFrame:
    empty = ALERTS.empty()
    out = []
    for i, r in enumerate(rows):
        created = _T0 + timedelta(seconds=r["created_s"])
        ack = created + timedelta(seconds=r["tta_s"]) if r["tta_s"] is not None else None
        res = created + timedelta(seconds=r["ttr_s"]) if r["ttr_s"] is not None else None
        out.append(
            {
                "id": first_id + i,
                "rule": r["rule"],
                "key": f"k{first_id + i}",
                "fingerprint": r["rule"],
                "title": "t",
                "severity": r["severity"],
                "status": "resolved" if res else "active",
                "is_open": res is None,
                "is_muted": r["occurrences"] == 4,
                "source": "prometheus",
                "service": "api",
                "team": r["team"],
                "occurrences": r["occurrences"],
                "resolved_by": "klaxon" if res and r["auto"] else None,
                "resolution": "auto" if res and r["auto"] else None,
                "created_at": created,
                "source_started_at": created - timedelta(seconds=5),
                "acknowledged_at": ack,
                "resolved_at": res,
            }
        )
    frame = pl.DataFrame(out, schema_overrides={"team": pl.String})
    frame = frame.with_columns(
        [pl.lit(None).cast(t).alias(c) for c, t in empty.schema.items() if c not in frame.columns]
    )
    frame = frame.select([pl.col(c).cast(empty.schema[c]) for c in ALERTS.raw_schema])
    return ALERTS.derive(frame).select(empty.columns)


@pytest.mark.hypothesis
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    base=st.lists(_rows, min_size=1, max_size=60),
    changed=st.lists(st.tuples(st.integers(0, 59), _rows), max_size=15),
    added=st.lists(_rows, max_size=10),
    start_s=st.integers(0, 3 * 86400),
    length_s=st.integers(3600, 8 * 86400),  # up to every row: the whole-file sidecars
    team=st.sampled_from([None, "platform"]),
    severity=st.sampled_from([None, "high,low"]),
)
def test_rollups_of_partitions_and_a_delta_equal_the_exact_answer(
    tmp_path_factory, base, changed, added, start_s, length_s, team, severity
) -> None:
    folder = tmp_path_factory.mktemp("rollup")
    db = Database(f"sqlite:///{folder / 'empty.db'}")
    snap = Snapshots(db, folder / "data")
    part = snap._write_part(ALERTS, _frame(base, 1), 0, 1)
    state = TableState(parts={0: part}, hi_id=part.max_id)
    delta_rows = {i % len(base): r for i, r in changed}
    if delta_rows or added:
        delta = pl.concat(
            [_frame([r], i + 1) for i, r in sorted(delta_rows.items())]
            + [_frame(added, len(base) + 1)] * bool(added)
        ).sort("id")
        state.delta, state.delta_rows = "alerts/delta-g00000001.parquet", delta.height
        snap._write(delta, snap.path(state.delta))
        state.touched = snap._touched(state, delta)
        snap._write_delta_rollup(state, delta)
    snap.root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(1, "2100-01-01T00:00:00+00:00", pl.__version__, {"alerts": state})
    manifest.rollups = rollup.ROLLUP_VERSION
    snap.manifest_path.write_bytes(manifest.to_json())
    fast = Warehouse(db, folder / "data", max_age_s=1e9)
    exact = Warehouse(db, folder / "data", max_age_s=1e9, use_rollups=False)
    try:
        start = (_T0 + timedelta(seconds=start_s)).replace(tzinfo=UTC)
        f = Filters.of(
            start=start, end=start + timedelta(seconds=length_s), team=team, severity=severity
        )
        assert fast.rolled_up()
        for metric in ("mtta", "mttr"):
            for by in (None, "team", "rule"):
                _same(
                    response_times(fast, f, metric, by=by), response_times(exact, f, metric, by=by)
                )
        for by in ("severity", "rule"):
            _same(volume(fast, f, by=by), volume(exact, f, by=by))
        _same(noise(fast, f), noise(exact, f))
        _same(team_load(fast, f, TEAM_ZONES, MEMBERS), team_load(exact, f, TEAM_ZONES, MEMBERS))
        now = _T0.replace(tzinfo=UTC) + timedelta(days=8)
        _same(
            dashboard(fast, f, DEFAULT_TARGETS, now=now),
            dashboard(exact, f, DEFAULT_TARGETS, now=now),
        )
    finally:
        fast.close()
        exact.close()
        db.dispose()


@pytest.mark.hypothesis
@given(
    values=st.lists(
        st.one_of(st.just(0.0), st.floats(1e-6, 1e8, allow_nan=False)), min_size=1, max_size=300
    ),
    q=st.floats(0, 1),
)
def test_histogram_quantiles_are_within_alpha_of_quantile_cont(values: list[float], q: float):
    frame = pl.DataFrame({"x": values}).select(
        k=pl.lit(1),
        bin=pl.when(pl.col("x") <= 0)
        .then(rollup.ZERO_BIN)
        .otherwise((pl.col("x").log() / math.log(rollup.GAMMA)).ceil().cast(pl.Int32)),
        n=pl.lit(1, dtype=pl.Int64),
    )
    got = rollup.quantiles(frame, ["k"], [q])["q0"][0]
    want = float(np.quantile(np.array(values), q))
    assert got == pytest.approx(want, rel=rollup.ALPHA * 1.0001, abs=1e-12)
