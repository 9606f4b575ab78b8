"""Team load: alerts per team member, and pages outside working hours.

- alerts per member: alerts of the team created in the period / its members (team_members);
- pages: notifications sent for the team's alerts in the period, except `resolved`, `test` and
  `report` ones (they wake nobody up);
- after hours: a page sent outside 08:00–18:00 (local time of the team: `teams.quiet_hours.tz`,
  else UTC; weekends are not special). A team with no pages at all in the period (notifications
  not set up) is measured by its alerts' creation times instead: `after_hours_basis` says which;
- per person: alerts they acknowledged and resolved, pages that reached them (directly, as a
  user target, or as the one on call) and how many came outside 08:00–18:00 in their time zone.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import Connection, select

from engine.analytics import rollup
from engine.analytics.filters import DIMENSIONS, Filters
from engine.analytics.frames import records, share
from engine.analytics.warehouse import Warehouse
from engine.store.models import Team, TeamMember, User

WORK_START_H = 8
WORK_END_H = 18
NOT_PAGES = ("resolved", "test", "report")
PAGED_AT = "coalesce(n.sent_at, n.created_at)"


def people(conn: Connection) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(teams: team, tz, members) and (members: team, email, name, tz) from the store."""
    teams = conn.execute(select(Team.id, Team.name, Team.quiet_hours)).all()
    members = conn.execute(
        select(TeamMember.team_id, User.email, User.name, User.tz)
        .join(User, User.id == TeamMember.user_id)
        .where(User.is_active)
    ).all()
    names = {tid: name for tid, name, _ in teams}
    count: dict[int, int] = {}
    for tid, *_ in members:
        count[tid] = count.get(tid, 0) + 1
    team_frame = pl.DataFrame(
        {
            "team": [name for _, name, _ in teams],
            "tz": [str((qh or {}).get("tz") or "UTC") for _, _, qh in teams],
            "members": [count.get(tid, 0) for tid, _, _ in teams],
        },
        schema={"team": pl.String, "tz": pl.String, "members": pl.Int64},
    )
    member_frame = pl.DataFrame(
        {
            "team": [names.get(tid, "") for tid, *_ in members],
            "email": [m[1] for m in members],
            "name": [m[2] for m in members],
            "tz": [m[3] or "UTC" for m in members],
        },
        schema={"team": pl.String, "email": pl.String, "name": pl.String, "tz": pl.String},
    )
    return team_frame, member_frame


def _pages_where(filters: Filters) -> tuple[str, str, dict[str, Any]]:
    """(join, condition, params) for the pages of the filtered alerts in the period: the team
    is the notification's own; other filters need the alerts joined."""
    n_time, params = filters.where("n", dimensions=("team",))
    others = tuple(d for d in DIMENSIONS if d != "team")
    dims, dim_params = filters.dims("a", dimensions=others)
    narrowed = any(getattr(filters, d) for d in others)
    join = "JOIN alerts a ON a.id = n.alert_id" if narrowed else ""
    not_pages = ", ".join(f"'{t}'" for t in NOT_PAGES)
    where = f"{n_time} AND n.status = 'sent' AND n.transition NOT IN ({not_pages})"
    return join, f"{where} AND {dims}" if narrowed else where, params | dim_params


def by_zone(
    wh: Warehouse,
    slots_sql: str,
    params: dict[str, Any],
    key: str,
    zones: pl.DataFrame,
    counts: tuple[str, ...],
    outside: str,
    *,
    known_only: bool = False,
    fresh: bool = False,
) -> pl.DataFrame:
    """Per `key`: the sums of `counts`, and `after_hours` (the sum of `outside` over slots
    outside working hours in that key's time zone).

    `slots_sql` gives `key`, `slot` (a 15-minute UTC slot: every real zone's offset is a
    multiple of 15 minutes, so a slot lies within one local hour) and the counts; `zones` maps
    keys to zones (a key without one is in UTC; with `known_only`, a key without one is left
    out); `slots_sql` may read `zones` too. The local hour is worked out once per (zone, slot),
    not per row.
    """
    sums = ", ".join(f"sum({c})::BIGINT AS {c}" for c in counts)
    return wh.frame(
        f"""
        WITH s AS ({slots_sql}),
        m AS (
            SELECT s.*, coalesce(z.tz, 'UTC') AS tz
            FROM s {"" if known_only else "LEFT"} JOIN zones z USING ({key})
        ),
        h AS (
            SELECT tz, slot, extract(hour FROM timezone(tz, slot AT TIME ZONE 'UTC')) AS local_hour
            FROM (SELECT DISTINCT tz, slot FROM m)
        )
        SELECT {key}, {sums},
               coalesce(sum({outside}) FILTER (
                   local_hour < {WORK_START_H} OR local_hour >= {WORK_END_H}
               ), 0)::BIGINT AS after_hours
        FROM m JOIN h USING (tz, slot) GROUP BY {key}
        """,
        params,
        fresh=fresh,
        zones=zones.select(key, "tz"),
    )


def team_load(
    wh: Warehouse, filters: Filters, teams: pl.DataFrame, members: pl.DataFrame
) -> dict[str, Any]:
    join, where, params = _pages_where(filters)
    slots_sql, slot_params = _alert_slots(wh, filters)
    alerts = by_zone(
        wh,
        slots_sql,
        slot_params,
        "team",
        teams,
        ("alerts", "acknowledged"),
        "unmuted",
        fresh=True,
    ).rename({"after_hours": "after_hours_alerts"})
    pages = by_zone(
        wh,
        f"""
        SELECT coalesce(n.team, '') AS team,
               time_bucket(INTERVAL 15 minutes, {PAGED_AT}) AS slot, count(*) AS pages
        FROM notifications n {join} WHERE {where} GROUP BY ALL
        """,
        params,
        "team",
        teams,
        ("pages",),
        "pages",
    ).rename({"after_hours": "after_hours_pages"})
    wanted = set(filters.team)
    known = teams.filter(pl.col("team").is_in(list(wanted))) if wanted else teams
    frame = (
        known.select("team", "tz", "members")
        .join(alerts, on="team", how="full", coalesce=True)
        .join(pages, on="team", how="left")
        .with_columns(
            pl.col(
                "members",
                "alerts",
                "acknowledged",
                "pages",
                "after_hours_pages",
                "after_hours_alerts",
            ).fill_null(0),
            pl.col("tz").fill_null("UTC"),
        )
        .sort(["alerts", "team"], descending=[True, False])
    )
    rows = []
    for r in records(frame):
        basis = "notifications" if r["pages"] else "alerts"
        rows.append(
            {
                "team": r["team"] or None,
                "tz": r["tz"],
                "members": r["members"],
                "alerts": r["alerts"],
                "alerts_per_member": share(r["alerts"], r["members"]),
                "acknowledged": r["acknowledged"],
                "pages": r["pages"],
                "after_hours_pages": r["after_hours_pages"]
                if basis == "notifications"
                else r["after_hours_alerts"],
                "after_hours_basis": basis,
            }
        )
    return {
        "filters": filters.to_dict(),
        "work_hours": f"{WORK_START_H:02d}:00-{WORK_END_H:02d}:00",
        "teams": rows,
        "people": _people(wh, filters, members),
    }


def _alert_slots(wh: Warehouse, filters: Filters) -> tuple[str, dict[str, Any]]:
    """SQL of alerts, acknowledged and unmuted per (team, 15-minute slot): from the `slots`
    sidecars when they answer (rollup.slot_rows), else from the alerts."""
    rows = rollup.slot_rows(filters)
    if rows is not None and wh.rolled_up():
        sql, params = rows
        return (
            f"""
            SELECT team, slot, sum(alerts)::BIGINT AS alerts,
                   sum(acknowledged)::BIGINT AS acknowledged, sum(unmuted)::BIGINT AS unmuted
            FROM ({sql}) GROUP BY ALL HAVING sum(alerts) <> 0
            """,
            params,
        )
    where, params = filters.where("a")
    return (
        f"""
        SELECT coalesce(a.team, '') AS team, time_bucket(INTERVAL 15 minutes, a.created_at) AS slot,
               count(*) AS alerts, count(a.acknowledged_at) AS acknowledged,
               count(*) FILTER (NOT a.is_muted) AS unmuted
        FROM alerts a WHERE {where} GROUP BY ALL
        """,
        params,
    )


def _acted(wh: Warehouse, filters: Filters) -> pl.DataFrame:
    """Per person (`who`): alerts acknowledged and resolved; from the `people` sidecars when
    they answer (rollup.people_rows), else from the alerts."""
    rows = rollup.people_rows(filters)
    if rows is not None and wh.rolled_up():
        sql, params = rows
        return wh.frame(
            f"""
            SELECT who, sum(acknowledged) AS acknowledged, sum(resolved) AS resolved
            FROM ({sql}) GROUP BY who HAVING sum(acknowledged) <> 0 OR sum(resolved) <> 0
            """,
            params,
            fresh=False,
        )
    where, params = filters.where("a")
    return wh.frame(
        f"""
        SELECT who, sum(acknowledged) AS acknowledged, sum(resolved) AS resolved FROM (
            SELECT acknowledged_by AS who, count(*) AS acknowledged, 0 AS resolved
            FROM alerts a WHERE {where} AND acknowledged_by IS NOT NULL GROUP BY ALL
            UNION ALL
            SELECT resolved_by AS who, 0 AS acknowledged, count(*) AS resolved
            FROM alerts a WHERE {where} AND resolved_by IS NOT NULL GROUP BY ALL
        ) GROUP BY who
        """,
        params,
        fresh=False,
    )


def _people(wh: Warehouse, filters: Filters, members: pl.DataFrame) -> list[dict[str, Any]]:
    if wanted := set(filters.team):
        members = members.filter(pl.col("team").is_in(list(wanted)))
    if members.height == 0:
        return []
    join, where, params = _pages_where(filters)
    acked = _acted(wh, filters)
    # The alerts are joined only when a filter needs them; the prefix is stripped after
    # grouping, on a few thousand rows rather than on every page.
    tz_of = members.select("email", "tz").unique("email").rename({"email": "who"})
    paged = by_zone(
        wh,
        f"""
        SELECT regexp_replace(raw, '^user:', '') AS who, slot, sum(pages)::BIGINT AS pages
        FROM (
            SELECT coalesce(n.person, n.target) AS raw,
                   time_bucket(INTERVAL 15 minutes, {PAGED_AT}) AS slot, count(*) AS pages
            FROM notifications n {join}
            WHERE {where} AND coalesce(n.person, n.target) IN (
                      SELECT who FROM zones UNION ALL SELECT 'user:' || who FROM zones
                  )
            GROUP BY ALL
        ) GROUP BY ALL
        """,
        params,
        "who",
        tz_of,
        ("pages",),
        "pages",
        known_only=True,
    ).rename({"who": "email", "after_hours": "after_hours_pages"})
    # A person acts under their email or their name.
    by_email = members.select("email", "name").unique()
    acted = (
        pl.concat(
            [
                by_email.join(acked, left_on="email", right_on="who").select(
                    "email", "acknowledged", "resolved"
                ),
                by_email.filter(pl.col("name") != pl.col("email"))
                .join(acked, left_on="name", right_on="who")
                .select("email", "acknowledged", "resolved"),
            ]
        )
        .group_by("email")
        .agg(pl.col("acknowledged", "resolved").sum().cast(pl.Int64))
    )
    frame = (
        members.group_by("email", "name", "tz")
        .agg(pl.col("team").sort().alias("teams"))
        .join(acted, on="email", how="left")
        .join(paged, on="email", how="left")
        .with_columns(pl.col("acknowledged", "resolved", "pages", "after_hours_pages").fill_null(0))
        .sort("email")
    )
    return records(frame)
