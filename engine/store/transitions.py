"""Applying the engine's transitions to the `alerts` table, a batch at a time.

Within one batch an alert may fire, repeat, resolve and fire again. Rows are numbered by
generation per (rule, key): generation 0 belongs to the alert already open in the store,
each `fired` starts the next. Each generation is applied with a handful of bulk statements,
so a batch costs a few round trips however many alerts it touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, NamedTuple

import orjson
import polars as pl
from sqlalchemy import Connection, Text, any_, bindparam, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from engine.schema import TRANSITION_SCHEMA
from engine.store.models import Alert, Incident

ENGINE_ACTOR = "klaxon"


class Routing(NamedTuple):
    """How a batch fired an alert: what notification planning reads of it besides the
    message's snapshot (none of it changes later in the batch)."""

    id: int
    team: str | None
    notify: list[str]
    escalate: list[dict[str, Any]]
    muted_by: list[str]


@dataclass
class Applied:
    """What a batch did to the alerts table, for notifications and the live stream."""

    fired: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    repeated: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    # The fired and resolved changes in order: whole frames of fired alerts, and dicts.
    _parts: list[pl.DataFrame | dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def changed(self) -> list[int]:
        return sorted(
            set(self.fired) | set(self.resolved) | set(self.repeated) | set(self.reopened)
        )

    @property
    def transitions(self) -> pl.DataFrame:
        """APPLIED_SCHEMA rows in order: alert_id, transition (fired or resolved; a reopen is
        fired), at, rule, key; and for the alerts this batch fired (`routed`), how it routed
        them (team, notify, escalate, muted_by). The alert rows hold the rest."""
        frames: list[pl.DataFrame] = []
        run: list[dict[str, Any]] = []
        for part in [*self._parts, None]:
            if isinstance(part, dict):
                run.append(part)
                continue
            if run:
                frames.append(pl.DataFrame(run, schema=APPLIED_SCHEMA))
                run = []
            if part is not None:
                frames.append(part)
        return pl.concat(frames) if frames else pl.DataFrame(schema=APPLIED_SCHEMA)

    def add_fired(self, fired: pl.DataFrame, ids: list[int]) -> None:
        """Alerts stored from fired transition rows (TRANSITION_SCHEMA), with their new ids."""
        self.fired.extend(ids)
        self._parts.append(
            fired.select(
                pl.Series("alert_id", ids, dtype=pl.Int64),
                pl.lit("fired").alias("transition"),
                "at",
                "rule",
                "key",
                pl.lit(True).alias("routed"),
                "team",
                "notify",
                "escalate",
                "muted_by",
            )
        )

    def add(self, alert_id: int, transition: str, at: datetime, rule: str, key: str) -> None:
        """A change whose routing the alert's row holds (a resolve, or a reopen)."""
        self._parts.append(
            {
                "alert_id": alert_id,
                "transition": transition,
                "at": at,
                "rule": rule,
                "key": key,
                "routed": False,
            }
        )


APPLIED_SCHEMA = pl.Schema(
    {
        "alert_id": pl.Int64(),
        "transition": pl.String(),
        "at": TRANSITION_SCHEMA["at"],
        "rule": pl.String(),
        "key": pl.String(),
        "routed": pl.Boolean(),
        **{c: TRANSITION_SCHEMA[c] for c in ("team", "notify", "escalate", "muted_by")},
    }
)


def _now() -> datetime:
    return datetime.now(UTC)


def _open_alerts(
    conn: Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str]]:
    """(rule, key) → (id, status) of the open alert, for the given keys.

    Asked per rule as `is_open AND rule = ? AND key IN (...)`, written so both stores search
    the partial unique index on open alerts: SQLite uses a partial index only when the query
    repeats its WHERE (`is_open`, not `is_open = 1`), and scanned every alert ever stored
    for a row-value IN (8 ms a batch at 11,000 alerts, growing).
    """
    by_rule: dict[str, list[str]] = {}
    for rule, key in keys:
        by_rule.setdefault(rule, []).append(key)
    found: dict[tuple[str, str], tuple[int, str]] = {}
    pg = conn.dialect.name == "postgresql"
    size = 10_000 if pg else 500
    for rule, rule_keys in by_rule.items():
        for i in range(0, len(rule_keys), size):
            chunk = rule_keys[i : i + size]
            # PostgreSQL: one array parameter (psycopg parses a placeholder per key slowly).
            among = Alert.key == any_(literal(chunk, ARRAY(Text))) if pg else Alert.key.in_(chunk)
            rows = conn.execute(
                select(Alert.id, Alert.key, Alert.status).where(_IS_OPEN, Alert.rule == rule, among)
            )
            for alert_id, key, status in rows:
                found[(rule, key)] = (alert_id, status)
    return found


_IS_OPEN = text("alerts.is_open")  # the partial index's own predicate (see _open_alerts)


def _incidents(conn: Connection, fired: pl.DataFrame) -> dict[tuple[str, str, datetime], int]:
    """Find or create the incidents fired alerts join; return their ids."""
    rows = fired.filter(pl.col("incident_by").is_not_null())
    if rows.height == 0:
        return {}
    wanted = rows.group_by("incident_by", "incident_key", "incident_opened").agg(
        pl.col("title").first(), pl.len().alias("n"), pl.col("severity").cast(pl.String).max()
    )
    ids: dict[tuple[str, str, datetime], int] = {}
    for r in wanted.iter_rows(named=True):
        ident = (r["incident_by"], r["incident_key"], r["incident_opened"])
        existing = conn.execute(
            select(Incident.id).where(
                Incident.correlate == ident[0],
                Incident.key == ident[1],
                Incident.opened_at == ident[2],
            )
        ).scalar_one_or_none()
        if existing is None:
            existing = conn.execute(
                insert(Incident)
                .values(
                    correlate=ident[0],
                    key=ident[1],
                    title=_incident_title(ident[0], ident[1]),
                    opened_at=ident[2],
                    status="open",
                    severity=r["severity"] or "info",
                    alert_count=0,
                )
                .returning(Incident.id)
            ).scalar_one()
        ids[ident] = existing
    return ids


def _incident_title(by: str, key: str) -> str:
    values = orjson.loads(key)
    return f"{by}: " + ", ".join(f"{k}={v}" for k, v in values.items())


def _alert_values(row: dict[str, Any], incident_id: int | None, now: datetime) -> dict[str, Any]:
    muted = list(row["muted_by"] or [])
    return {
        "rule": row["rule"],
        "key": row["key"],
        "fingerprint": row["fingerprint"] or "",
        "title": row["title"] or row["rule"],
        "description": row["description"] or "",
        "severity": row["severity"],
        "status": "suppressed" if muted else "active",
        "is_open": True,
        "source": row["source"] or "",
        "service": row["service"] or "",
        "environment": row["environment"] or "",
        "host": row["host"] or "",
        "team": row["team"],
        "labels": dict(row["labels"] or {}),
        "event_labels": dict(row["event_labels"] or {}),
        "value": row["value"],
        "occurrences": int(row["occurrences"] or 1),
        "first_seen": row["first_seen"] or row["at"],
        "last_seen": row["at"],
        "source_started_at": row["event_ts"] or row["first_seen"] or row["at"],
        "created_at": row["at"],
        "notify": list(row["notify"] or []),
        "escalate": [dict(e) for e in (row["escalate"] or [])],
        "muted_by": muted,
        "incident_id": incident_id,
        "last_event_id": row["event_id"],
        "escalation_level": 0,
        "updated_at": now,
    }


_TEXT_COLUMNS = ("fingerprint", "description", "source", "service", "environment", "host")
_EMPTY_JSON = {"labels": "{}", "event_labels": "{}", "notify": "[]", "escalate": "[]"}


def _json_column(name: str) -> pl.Expr:
    """A column as JSON text per row (a null as its empty value), encoded by Polars."""
    encoded = (
        pl.struct(pl.col(name).alias("v"))
        .struct.json_encode()
        .str.strip_prefix('{"v":')
        .str.strip_suffix("}")
    )
    empty = _EMPTY_JSON.get(name, "[]")
    return pl.when(pl.col(name).is_null()).then(pl.lit(empty)).otherwise(encoded).alias(name)


def _alert_frame(
    fired: pl.DataFrame, incident_ids: dict[tuple[str, str, datetime], int], now: datetime
) -> pl.DataFrame:
    """The alert rows of fired transitions, column-wise (as `_alert_values` makes one): JSON
    columns as JSON text, times as UTC datetimes, in the alerts table's column names."""
    if incident_ids:
        incidents = pl.DataFrame(
            [(*ident, incident_id) for ident, incident_id in incident_ids.items()],
            schema={
                "incident_by": pl.String,
                "incident_key": pl.String,
                "incident_opened": fired.schema["incident_opened"],
                "incident_id": pl.Int64,
            },
            orient="row",
        )
        with_ids = fired.join(
            incidents,
            on=["incident_by", "incident_key", "incident_opened"],
            how="left",
            maintain_order="left",
        )
    else:
        with_ids = fired.with_columns(incident_id=pl.lit(None, dtype=pl.Int64))
    muted = pl.col("muted_by").list.len().fill_null(0) > 0
    text = [pl.col(c).fill_null("") for c in _TEXT_COLUMNS]
    title = pl.col("title").fill_null("")
    return with_ids.select(
        "rule",
        "key",
        *text,
        pl.when(title == "").then(pl.col("rule")).otherwise(title).alias("title"),
        pl.col("severity").cast(pl.String),
        pl.when(muted).then(pl.lit("suppressed")).otherwise(pl.lit("active")).alias("status"),
        pl.lit(True).alias("is_open"),
        "team",
        *(_json_column(c) for c in ("labels", "event_labels", "notify", "escalate", "muted_by")),
        "value",
        pl.when(pl.col("occurrences").fill_null(0) == 0)
        .then(1)
        .otherwise(pl.col("occurrences"))
        .alias("occurrences"),
        pl.coalesce("first_seen", "at").alias("first_seen"),
        pl.col("at").alias("last_seen"),
        pl.coalesce("event_ts", "first_seen", "at").alias("source_started_at"),
        pl.col("at").alias("created_at"),
        "incident_id",
        pl.col("event_id").alias("last_event_id"),
        pl.lit(0).alias("escalation_level"),
        pl.lit(now).dt.convert_time_zone("UTC").alias("updated_at"),
    )


_HISTORY = pl.Schema(
    {
        "alert_id": pl.Int64(),
        "at": pl.Datetime("us", "UTC"),
        "action": pl.String(),
        "actor": pl.String(),
        "from_status": pl.String(),
        "to_status": pl.String(),
        "note": pl.String(),
        "details": pl.String(),
    }
)


def _history_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """History dicts (details a dict) as a frame `insert_frame` takes (details as JSON)."""
    return pl.DataFrame(
        [{**r, "details": orjson.dumps(r["details"]).decode()} for r in rows], schema=_HISTORY
    )


def _fired_history(alerts: pl.DataFrame, muted_by: pl.Series, ids: list[int]) -> pl.DataFrame:
    """History rows of newly stored alerts (`_alert_frame` rows, with the fired rows' own
    muted_by lists and the alerts' ids)."""
    muted = pl.col("muted_by") != "[]"
    return alerts.with_columns(muted_list=muted_by).select(
        pl.Series("alert_id", ids, dtype=pl.Int64),
        pl.col("created_at").alias("at"),
        pl.when(muted).then(pl.lit("suppressed")).otherwise(pl.lit("fired")).alias("action"),
        pl.lit(ENGINE_ACTOR).alias("actor"),
        pl.lit(None, dtype=pl.String).alias("from_status"),
        pl.col("status").alias("to_status"),
        pl.when(muted)
        .then(
            pl.concat_str(
                pl.lit("muted by "),
                pl.col("muted_list").list.join(", "),
            )
        )
        .alias("note"),
        pl.concat_str(
            pl.lit('{"rule":'),
            _json_column("rule"),
            pl.lit(',"key":'),
            pl.col("key"),
            pl.lit(',"muted_by":'),
            pl.col("muted_by"),
            pl.lit("}"),
        ).alias("details"),
    )


def apply_transitions(conn: Connection, transitions: pl.DataFrame) -> Applied:
    """Apply TRANSITION_SCHEMA rows (sorted as the engine emits them) to the store.

    The store is asked for the open alerts of the keys this batch repeats or resolves before
    firing them again, not of the keys it fires first: the engine fires only where it holds
    no open alert, and so has the store, unless the engine's state was rebuilt without it or
    a person reopened one. The partial unique index on open alerts tells those cases apart:
    the batch is then applied again, asking for every key (the lookup cost up to 80 ms a batch
    of 5,000 new alerts on PostgreSQL with 300,000 open, and grew with them).
    """
    if transitions.height == 0:
        return Applied()
    dbapi = conn.dialect.dbapi
    assert dbapi is not None
    integrity = (IntegrityError, dbapi.IntegrityError)  # COPY raises the driver's own
    try:
        with conn.begin_nested():
            return _apply(conn, transitions, every_key=False)
    except integrity:
        return _apply(conn, transitions, every_key=True)


def _apply(conn: Connection, transitions: pl.DataFrame, *, every_key: bool) -> Applied:
    applied = Applied()
    now = _now()
    frame = transitions.with_columns(
        gen=(pl.col("transition") == "fired").cast(pl.Int32).cum_sum().over("rule", "key")
    )
    # Generation 0: rows about an alert already open before this batch.
    asked = frame if every_key else frame.filter(pl.col("gen") == 0)
    keys = asked.select("rule", "key").unique().rows()
    open_now = _open_alerts(conn, [tuple(k) for k in keys])
    incident_ids = _incidents(conn, frame.filter(pl.col("transition") == "fired"))
    history: list[dict[str, Any]] = []
    # History in the order it happened: fired rows as frames, the rest as dicts, inserted at
    # the end in this order (so ids follow the batch).
    history_parts: list[pl.DataFrame | list[dict[str, Any]]] = []
    current: dict[tuple[str, str], int] = {k: v[0] for k, v in open_now.items()}
    statuses: dict[tuple[str, str], str] = {k: v[1] for k, v in open_now.items()}

    for gen in range(int(frame["gen"].max() or 0) + 1):  # type: ignore[arg-type]
        rows = frame.filter(pl.col("gen") == gen)
        fired = rows.filter(pl.col("transition") == "fired")
        if fired.height:
            alerts = _alert_frame(fired, incident_ids, now)
            rules, keys_, statuses_now = (alerts[c].to_list() for c in ("rule", "key", "status"))
            # An alert the store still holds open (the engine restarted its state, or a person
            # reopened it) is closed as replaced before its successor opens.
            stale = [current[k] for k in zip(rules, keys_, strict=True) if k in current]
            if stale:
                conn.execute(
                    update(Alert)
                    .where(Alert.id.in_(stale))
                    .values(
                        is_open=False,
                        status="resolved",
                        resolved_at=now,
                        resolved_by=ENGINE_ACTOR,
                        resolution="replaced",
                    )
                )
            ids = insert_frame(conn, "alerts", alerts, returning=True)
            applied.add_fired(fired, ids)
            for alert_id, rule, key, status in zip(ids, rules, keys_, statuses_now, strict=True):
                current[(rule, key)] = alert_id
                statuses[(rule, key)] = status
            if history:
                history_parts.append(history)
                history = []
            history_parts.append(_fired_history(alerts, fired["muted_by"], ids))
            counts = alerts.drop_nulls("incident_id").group_by("incident_id").len()
            for incident_id, n in counts.iter_rows():
                conn.execute(
                    update(Incident)
                    .where(Incident.id == incident_id)
                    .values(alert_count=Incident.alert_count + n, status="open", resolved_at=None)
                )
        repeats = (
            rows.filter(pl.col("transition") == "repeated")
            .group_by("rule", "key", maintain_order=True)
            .agg(
                pl.col("occurrences").sum(),
                pl.col("at").max(),
                pl.col("value").last(),
                pl.col("title").last(),
                pl.col("event_id").last(),
            )
        )
        if repeats.height:
            params = []
            reopen_rows: list[dict[str, Any]] = []
            for r in repeats.iter_rows(named=True):
                repeat_id = current.get((r["rule"], r["key"]))
                if repeat_id is None:
                    # A person resolved it while the source still reports it: open it again.
                    reopen_rows.append(r)
                    continue
                params.append(
                    {
                        "b_id": repeat_id,
                        "b_n": int(r["occurrences"]),
                        "b_at": r["at"],
                        "b_value": r["value"],
                        "b_title": r["title"],
                        "b_event": r["event_id"],
                    }
                )
                applied.repeated.append(repeat_id)
            if params:
                conn.execute(
                    update(Alert)
                    .where(Alert.id == bindparam("b_id"))
                    .values(
                        occurrences=Alert.occurrences + bindparam("b_n"),
                        last_seen=bindparam("b_at"),
                        value=bindparam("b_value"),
                        title=bindparam("b_title"),
                        last_event_id=bindparam("b_event"),
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False),
                    params,
                )
            if reopen_rows:
                _reopen(conn, frame, reopen_rows, current, statuses, applied, history, now)
        resolved = rows.filter(pl.col("transition") == "resolved")
        if resolved.height:
            params = []
            for r in resolved.iter_rows(named=True):
                resolved_id = current.pop((r["rule"], r["key"]), None)
                if resolved_id is None:
                    continue  # already resolved by a person
                before = statuses.pop((r["rule"], r["key"]), "active")
                params.append(
                    {
                        "b_id": resolved_id,
                        "b_at": r["at"],
                        "b_value": r["value"],
                        "b_resolution": _resolution(r),
                    }
                )
                applied.resolved.append(resolved_id)
                applied.add(resolved_id, "resolved", r["at"], r["rule"], r["key"])
                history.append(
                    {
                        "alert_id": resolved_id,
                        "at": r["at"],
                        "action": "resolved",
                        "actor": ENGINE_ACTOR,
                        "from_status": before,
                        "to_status": "resolved",
                        "note": _resolution(r),
                        "details": {"muted_by": list(r["muted_by"] or [])},
                    }
                )
            if params:
                conn.execute(
                    update(Alert)
                    .where(Alert.id == bindparam("b_id"))
                    .values(
                        status="resolved",
                        is_open=False,
                        resolved_at=bindparam("b_at"),
                        resolved_by=ENGINE_ACTOR,
                        resolution=bindparam("b_resolution"),
                        value=bindparam("b_value"),
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False),
                    params,
                )
    if history:
        history_parts.append(history)
    for part in history_parts:
        insert_frame(
            conn, "alert_history", part if isinstance(part, pl.DataFrame) else _history_frame(part)
        )
    _close_incidents(conn, applied.resolved)
    return applied


def _resolution(row: dict[str, Any]) -> str:
    """Resolved by the rules, not a person: the source said so, a window cleared, a timer ran."""
    return "auto"


def _reopen(
    conn: Connection,
    frame: pl.DataFrame,
    rows: list[dict[str, Any]],
    current: dict[tuple[str, str], int],
    statuses: dict[tuple[str, str], str],
    applied: Applied,
    history: list[dict[str, Any]],
    now: datetime,
) -> None:
    for r in rows:
        last = (
            frame.filter((pl.col("rule") == r["rule"]) & (pl.col("key") == r["key"]))
            .filter(pl.col("transition") == "repeated")
            .row(-1, named=True)
        )
        values = _alert_values(
            {**last, "occurrences": r["occurrences"], "first_seen": r["at"]}, None, now
        )
        alert_id = conn.execute(insert(Alert).values(**values).returning(Alert.id)).scalar_one()
        current[(r["rule"], r["key"])] = alert_id
        statuses[(r["rule"], r["key"])] = values["status"]
        applied.reopened.append(alert_id)
        applied.add(alert_id, "fired", r["at"], r["rule"], r["key"])
        history.append(
            {
                "alert_id": alert_id,
                "at": r["at"],
                "action": "reopened",
                "actor": ENGINE_ACTOR,
                "from_status": None,
                "to_status": values["status"],
                "note": "still reported after it was resolved by hand",
                "details": {},
            }
        )


def _close_incidents(conn: Connection, resolved_ids: list[int]) -> None:
    """An incident resolves when its last open alert does."""
    if not resolved_ids:
        return
    incident_ids = (
        conn.execute(
            select(Alert.incident_id)
            .where(Alert.id.in_(resolved_ids), Alert.incident_id.is_not(None))
            .distinct()
        )
        .scalars()
        .all()
    )
    for incident_id in incident_ids:
        still_open = conn.execute(
            select(Alert.id).where(Alert.incident_id == incident_id, Alert.is_open).limit(1)
        ).first()
        if still_open is None:
            conn.execute(
                update(Incident)
                .where(Incident.id == incident_id)
                .values(status="resolved", resolved_at=_now())
            )


def insert_frame(
    conn: Connection, table: str, frame: pl.DataFrame, *, returning: bool = False
) -> list[int]:
    """Insert a frame's rows into `table` (columns named as the table's; JSON columns as JSON
    text, datetimes in UTC), converted column-wise by Polars rather than value by value.
    With `returning`, the new ids in the order of the rows.

    PostgreSQL: ids drawn from the sequence first, then one COPY of CSV that Polars writes.
    SQLite: multi-row INSERTs (RETURNING the ids) or one executemany."""
    if frame.height == 0:
        return []
    if conn.dialect.name != "postgresql":
        stored = frame.with_columns(
            *(
                pl.col(c)
                .dt.convert_time_zone("UTC")
                .dt.replace_time_zone(None)
                .dt.to_string("%Y-%m-%d %H:%M:%S%.6f")
                for c, t in frame.schema.items()
                if isinstance(t, pl.Datetime)
            ),
            *(pl.col(c).cast(pl.Int64) for c, t in frame.schema.items() if t == pl.Boolean),
        )
        names = stored.columns
        head = f"INSERT INTO {table} ({', '.join(names)}) VALUES "
        cells = f"({', '.join('?' for _ in names)})"
        # Rows as tuples zipped from whole columns: half the time of DataFrame.rows().
        rows = zip(*(stored[c].to_list() for c in names), strict=True)
        if not returning:
            conn.exec_driver_sql(head + cells, list(rows))
            return []
        ids: list[int] = []
        chunk = max(1, 30_000 // len(names))  # SQLite allows 32,766 parameters a statement
        for start in range(0, stored.height, chunk):
            params = tuple(chain.from_iterable(islice(rows, chunk)))
            n = min(chunk, stored.height - start)
            found = conn.exec_driver_sql(
                head + ", ".join([cells] * n) + " RETURNING id", params
            ).all()
            # RETURNING's row order is not promised; ids grow in the order the rows went in.
            ids.extend(sorted(int(r[0]) for r in found))
        return ids
    ids = []
    if returning:
        ids = [
            int(i)
            for i in conn.execute(
                text(
                    f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"
                    " FROM generate_series(1, :n)"
                ),
                {"n": frame.height},
            ).scalars()
        ]
        frame = frame.insert_column(0, pl.Series("id", ids, dtype=pl.Int64))
    raw = conn.connection.driver_connection
    assert raw is not None
    quoted = ", ".join(f'"{c}"' for c in frame.columns)
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table} ({quoted}) FROM STDIN WITH (FORMAT csv)") as copy,
    ):
        copy.write(_copy_csv(frame))
    return ids


def _copy_csv(frame: pl.DataFrame) -> str:
    """A frame in COPY's CSV format, written by Polars' CSV writer: every text quoted, so an
    unquoted empty field is NULL and a quoted one an empty string."""
    return frame.write_csv(
        include_header=False,
        quote_style="non_numeric",
        datetime_format="%Y-%m-%d %H:%M:%S%.6f%:z",
    )
