"""Backtest: what a rules file would have done over the stored events of a period.

The period's events are read from the events snapshot in arrival order (id) and fed, a batch
at a time, to two engines started empty at the period's start: one with the proposed rules,
one with the current ones (both plus the silences made through the API, as the worker runs
them). Each reads the events once; transitions are folded into counts as they come, so
memory follows the batch, not the period. The clock is then advanced to the period's end so
that timers (`for`, absence, `resolve after`) fall due.

A page is one delivery of a fired, unmuted alert to one channel; targets are expanded as the
notifier would (engine.notify.targets), on-call schedules at the instant of the fire, so pages
per person are known too. Alerts open before the period started are not known to either run.

Alerts fired are also counted per time bucket (an hour for periods up to three days, else a
day), for both runs, so the panel can chart them over the period (issue 8).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from sqlalchemy import Connection, select

from engine.analytics.errors import AnalyticsQueryError
from engine.analytics.filters import naive
from engine.analytics.warehouse import Warehouse
from engine.pipeline.engine import Engine, compile_for_engine
from engine.schema import EVENT_KIND, EVENT_SCHEMA, SEVERITY, STATUS, UTC_US
from engine.store import rules as rules_store
from engine.store.db import Database, orm
from engine.store.models import Silence

BATCH_ROWS = 100_000
MAX_DAYS = 366
HOURLY_UP_TO = timedelta(days=3)
Progress = Callable[[int, int], None]


def api_silences(conn: Connection) -> str:
    """Every silence made through the API, as blocks; each applies only within its own times."""
    rows = orm(conn).scalars(select(Silence).order_by(Silence.id)).all()
    return "\n\n".join(rules_store.silence_block(s) for s in rows)


def current_rules(conn: Connection, default_file: str | Path | None = None) -> str:
    """The rules the worker runs now (the default file in a store that has none yet)."""
    found = rules_store.current(conn)
    if found is not None:
        return found.text
    return Path(default_file).read_text(encoding="utf-8") if default_file else ""


def with_silences(text: str, silences: str) -> str:
    return text.rstrip() + (
        "\n\n# silences made through the API\n\n" + silences + "\n" if silences else "\n"
    )


def check_period(start: datetime, end: datetime) -> None:
    if end <= start:
        raise AnalyticsQueryError("to", "'to' must be after 'from'")
    if (end - start).days > MAX_DAYS:
        raise AnalyticsQueryError("to", f"a period of at most {MAX_DAYS} days")


def bucket_for(start: datetime, end: datetime) -> str:
    """The series' bucket: `1h` for periods up to three days, else `1d` (UTC days)."""
    return "1h" if end - start <= HOURLY_UP_TO else "1d"


# ---------------------------------------------------------------- reading events


def count_events(wh: Warehouse, start: datetime, end: datetime) -> int:
    frame = wh.frame(
        "SELECT count(*) AS n FROM events WHERE ts >= $start AND ts < $end",
        {"start": naive(start), "end": naive(end)},
    )
    return int(frame["n"][0])


def read_events(
    wh: Warehouse, start: datetime, end: datetime, batch_rows: int = BATCH_ROWS
) -> Iterator[pl.DataFrame]:
    """The period's events (by `ts`) in arrival order, as EVENT_SCHEMA frames.

    Read with Polars straight from the snapshot's files (whole rows with their labels: about
    four times faster than through DuckDB); they are in id order already unless a refresh
    picked up a late row, and are sorted only then."""
    manifest = wh.ensure_fresh()
    frame = (
        wh.snapshots.scan("events", manifest)
        .filter((pl.col("ts") >= naive(start)) & (pl.col("ts") < naive(end)))
        .collect()
    )
    if not frame["id"].is_sorted():
        frame = frame.sort("id")
    frame = _canonical(frame.drop("id"))
    for offset in range(0, frame.height, batch_rows):
        yield frame.slice(offset, batch_rows)


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("ts", "received_at").dt.replace_time_zone("UTC").cast(UTC_US),
        pl.col("kind").cast(EVENT_KIND),
        pl.col("severity").cast(SEVERITY),
        pl.col("status").cast(STATUS),
        pl.col("labels").cast(EVENT_SCHEMA["labels"]),
        raw=pl.lit(None, dtype=pl.String),
    ).select(list(EVENT_SCHEMA))


# ---------------------------------------------------------------- one run's counts


@dataclass
class RunCounts:
    """What one engine run did, folded from its transitions."""

    bucket: str = "1h"
    fired: Counter[str] = field(default_factory=Counter)
    muted: Counter[str] = field(default_factory=Counter)
    resolved: Counter[str] = field(default_factory=Counter)
    occurrences: Counter[str] = field(default_factory=Counter)
    incidents: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)
    # fired, unmuted alerts with targets: (rule, team, at, targets), expanded at the end
    to_page: list[pl.DataFrame] = field(default_factory=list)
    # alerts fired per bucket start (`at` truncated to the bucket), one small frame per batch
    fired_at: list[pl.DataFrame] = field(default_factory=list)

    def series(self) -> pl.DataFrame:
        """Alerts fired per bucket start: `at` (UTC) and `n`, only buckets with alerts."""
        if not self.fired_at:
            return pl.DataFrame(schema={"at": UTC_US, "n": pl.Int64})
        return pl.concat(self.fired_at).group_by("at").agg(pl.col("n").sum()).sort("at")

    def add(self, transitions: pl.DataFrame) -> None:
        if transitions.height == 0:
            return
        t = transitions.with_columns(is_muted=pl.col("muted_by").list.len() > 0)
        fired = t.filter(pl.col("transition") == "fired")
        for rule, n in fired.group_by("rule").len().iter_rows():
            self.fired[rule] += n
        if fired.height:
            self.fired_at.append(
                fired.group_by(pl.col("at").dt.truncate(self.bucket)).agg(
                    pl.len().cast(pl.Int64).alias("n")
                )
            )
        for rule, n in fired.filter("is_muted").group_by("rule").len().iter_rows():
            self.muted[rule] += n
        for rule, n in (
            t.filter(pl.col("transition") == "resolved").group_by("rule").len().iter_rows()
        ):
            self.resolved[rule] += n
        for rule, n in t.group_by("rule").agg(pl.col("occurrences").sum()).iter_rows():
            self.occurrences[rule] += int(n or 0)
        for rule, by, key, opened in (
            fired.filter(pl.col("incident_by").is_not_null())
            .select("rule", "incident_by", "incident_key", "incident_opened")
            .unique()
            .iter_rows()
        ):
            self.incidents.setdefault(rule, set()).add((by, key, opened))
        pages = fired.filter(~pl.col("is_muted") & (pl.col("notify").list.len() > 0))
        if pages.height:
            self.to_page.append(pages.select("rule", "team", "at", "notify"))


@dataclass
class Pages:
    by_rule: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    by_person: Counter[str] = field(default_factory=Counter)
    unresolved: Counter[str] = field(default_factory=Counter)


def expand_pages(conn: Connection, frames: list[pl.DataFrame]) -> Pages:
    """Targets → channels and people, as the notifier resolves them at each fire's instant."""
    from engine.notify.targets import Directory, split_target

    out = Pages()
    if not frames:
        return out
    directory = Directory(conn)
    rows = pl.concat(frames).explode("notify")
    # Targets whose channels do not depend on the instant are resolved once per (target, team).
    static: dict[tuple[str, str | None], list[Any]] = {}
    for rule, team, at, target in rows.iter_rows():
        scope, _ = split_target(target)
        if scope == "oncall":
            deliveries = directory.resolve(target, team, at)
        else:
            deliveries = static.get((target, team)) or static.setdefault(
                (target, team), directory.resolve(target, team, at)
            )
        for d in deliveries:
            if d.error:
                out.unresolved[target] += 1
                continue
            out.by_rule[rule] += 1
            out.by_channel[d.channel] += 1
            if d.user:
                out.by_person[d.user] += 1
    return out


# ---------------------------------------------------------------- the backtest


def run_engines(
    engines: list[Engine],
    counts: list[RunCounts],
    batches: Iterator[pl.DataFrame],
    end: datetime,
    total: int,
    progress: Progress | None,
) -> int:
    """Feed every batch to every engine (in parallel threads: Polars releases the GIL)."""
    done = 0
    with ThreadPoolExecutor(max_workers=len(engines)) as pool:
        for batch in batches:
            outs = list(pool.map(Engine.feed, engines, [batch] * len(engines)))
            for c, out in zip(counts, outs, strict=True):
                c.add(out)
            done += batch.height
            if progress:
                progress(done, total)
        outs = list(pool.map(lambda e: e.advance(end), engines))
    for c, out in zip(counts, outs, strict=True):
        c.add(out)
    return done


def backtest(
    db: Database,
    wh: Warehouse,
    text: str,
    start: datetime,
    end: datetime,
    *,
    default_rules: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Per rule: alerts, muted, resolved, incidents and pages, beside the current rules' and
    the alerts the store holds for the period."""
    check_period(start, end)
    started = time.perf_counter()
    with db.read() as conn:
        silences = api_silences(conn)
        current_text = current_rules(conn, default_rules)
    proposed = compile_for_engine(with_silences(text, silences), "rules")
    same = current_text.strip() == text.strip()
    engines = [Engine(proposed)]
    key = _cache_key(db, wh, with_silences(current_text, silences), start, end)
    cached = None if same else _cached(wh, key)
    if not same and cached is None:
        engines.append(
            Engine(compile_for_engine(with_silences(current_text, silences), "current rules"))
        )
    every = bucket_for(start, end)
    counts = [RunCounts(bucket=every) for _ in engines]
    total = count_events(wh, start, end)
    if progress:
        progress(0, total)
    done = run_engines(engines, counts, read_events(wh, start, end), end, total, progress)
    with db.read() as conn:
        pages = [expand_pages(conn, c.to_page) for c in counts]
    if cached is not None:
        counts.append(cached[0])
        pages.append(cached[1])
    elif not same:
        _cache(wh, key, counts[-1], pages[-1])
    actual = _actual(wh, start, end)
    return _report(
        counts[0],
        pages[0],
        counts[-1],
        pages[-1],
        actual,
        done,
        start,
        end,
        time.perf_counter() - started,
        same,
    )


# ---------------------------------------------------------------- the current rules' run, cached
# Rule authors backtest one period again and again while they edit: the current rules' run over
# it is the same every time, so it is kept for an hour (keyed by the rules, the period, the
# events snapshot and the people, channels and schedules pages go to).

CACHE_S = 3600.0


def _cache_key(db: Database, wh: Warehouse, text: str, start: datetime, end: datetime) -> str:
    manifest = wh.snapshots.manifest()
    events = manifest.tables.get("events") if manifest else None
    with db.read() as conn:
        directory = [
            conn.exec_driver_sql(f"SELECT count(*), max(id) FROM {t}").one()
            for t in ("channels", "users", "schedules", "teams")
        ]
    state = orjson.dumps(
        [
            text,
            start.isoformat(),
            end.isoformat(),
            events.files() if events else [],
            [list(r) for r in directory],
        ],
        default=str,
    )
    return hashlib.sha256(state).hexdigest()[:32]


def _cache_path(wh: Warehouse, key: str) -> Path:
    return wh.snapshots.root / "backtests" / f"{key}.json"


def _cached(wh: Warehouse, key: str) -> tuple[RunCounts, Pages] | None:
    path = _cache_path(wh, key)
    try:
        if time.time() - path.stat().st_mtime > CACHE_S:
            return None
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    if "series" not in data:  # written before the series existed
        return None
    series = pl.DataFrame(
        {
            "at": [datetime.fromisoformat(a) for a, _ in data["series"]],
            "n": [n for _, n in data["series"]],
        },
        schema={"at": UTC_US, "n": pl.Int64},
    )
    counts = RunCounts(bucket=data.get("bucket", "1h"), fired=Counter(data["fired"]))
    if series.height:
        counts.fired_at.append(series)
    pages = Pages(**{k: Counter(v) for k, v in data["pages"].items()})
    return counts, pages


def _cache(wh: Warehouse, key: str, counts: RunCounts, pages: Pages) -> None:
    path = _cache_path(wh, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "fired": counts.fired,
        "bucket": counts.bucket,
        "series": [[a.isoformat(), n] for a, n in counts.series().iter_rows()],
        "pages": {
            k: getattr(pages, k) for k in ("by_rule", "by_channel", "by_person", "unresolved")
        },
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(data))
    tmp.replace(path)


def _actual(wh: Warehouse, start: datetime, end: datetime) -> dict[str, int]:
    frame = wh.frame(
        "SELECT rule, count(*) AS n FROM alerts "
        "WHERE created_at >= $start AND created_at < $end GROUP BY rule",
        {"start": naive(start), "end": naive(end)},
        fresh=False,
    )
    return {r: int(n) for r, n in frame.iter_rows()}


def _report(
    new: RunCounts,
    new_pages: Pages,
    cur: RunCounts,
    cur_pages: Pages,
    actual: dict[str, int],
    events: int,
    start: datetime,
    end: datetime,
    seconds: float,
    same: bool,
) -> dict[str, Any]:
    rules = sorted(
        set(new.fired) | set(new.resolved) | set(cur.fired) | set(actual) | set(new.occurrences)
    )
    rows: list[dict[str, Any]] = []
    for rule in rules:
        row: dict[str, Any] = {
            "rule": rule,
            "alerts": new.fired[rule],
            "muted": new.muted[rule],
            "resolved": new.resolved[rule],
            "occurrences": new.occurrences[rule],
            "incidents": len(new.incidents.get(rule, ())),
            "pages": new_pages.by_rule[rule],
            "current_alerts": cur.fired[rule],
            "current_pages": cur_pages.by_rule[rule],
            "stored_alerts": actual.get(rule, 0),
        }
        row["alerts_change"] = row["alerts"] - row["current_alerts"]
        row["pages_change"] = row["pages"] - row["current_pages"]
        rows.append(row)
    rows.sort(key=lambda r: (-r["alerts"], -r["current_alerts"], r["rule"]))
    return {
        "from": _iso(start),
        "to": _iso(end),
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds) if seconds > 0 else None,
        "same_as_current": same,
        "totals": {
            "alerts": sum(new.fired.values()),
            "pages": sum(new_pages.by_rule.values()),
            "current_alerts": sum(cur.fired.values()),
            "current_pages": sum(cur_pages.by_rule.values()),
            "stored_alerts": sum(actual.values()),
        },
        "rules": rows,
        "bucket": new.bucket,
        "series": _series(new, cur, start, end),
        "channels": _compare(new_pages.by_channel, cur_pages.by_channel, "channel"),
        "people": _compare(new_pages.by_person, cur_pages.by_person, "person"),
        "unresolved_targets": [
            {"target": t, "pages": n} for t, n in new_pages.unresolved.most_common()
        ],
    }


def _series(new: RunCounts, cur: RunCounts, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Alerts fired per bucket over the whole period (empty buckets as 0), both runs side by
    side. A timer due exactly at the period's end lands in a bucket of its own."""
    every = new.bucket
    first = pl.select(pl.lit(start.astimezone(UTC)).cast(UTC_US).dt.truncate(every)).item()
    grid = pl.DataFrame(
        {
            "at": pl.datetime_range(
                first, end, every, closed="left", time_unit="us", time_zone="UTC", eager=True
            )
        }
    )
    proposed, current = new.series(), cur.series()
    frame = (
        pl.concat([grid, proposed.select("at"), current.select("at")])
        .unique()
        .join(proposed.rename({"n": "alerts"}), on="at", how="left")
        .join(current.rename({"n": "current_alerts"}), on="at", how="left")
        .fill_null(0)
        .with_columns(alerts_change=pl.col("alerts") - pl.col("current_alerts"))
        .sort("at")
    )
    return [{**row, "at": _iso(row["at"])} for row in frame.iter_rows(named=True)]


def _compare(new: Counter[str], cur: Counter[str], name: str) -> list[dict[str, Any]]:
    keys = sorted(set(new) | set(cur), key=lambda k: (-new[k], -cur[k], k))
    return [
        {name: k, "pages": new[k], "current_pages": cur[k], "pages_change": new[k] - cur[k]}
        for k in keys
    ]


def _iso(value: datetime) -> str:
    from engine.analytics.frames import value as to_json

    out: str = to_json(value)
    return out
