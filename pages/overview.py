"""Overview: what is on fire now, how fast people respond, and whether pages get through.

The KPIs and charts live in a fragment that reruns every REFRESH_S seconds; the filters sit
outside it, so a refresh never loses them.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from app import navigation, services, state, widgets
from engine.analytics.delivery import delivery
from engine.analytics.filters import Filters
from engine.analytics.metrics import response_times
from engine.analytics.volume import volume
from engine.store.alerts import AlertQuery, count_alerts, list_alerts

PAGE = "overview"
REFRESH_S = 15


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _open_by_severity(
    conn: Any, actor: Any, teams: tuple[str, ...], services_: tuple[str, ...]
) -> dict[str, int]:
    return {
        s: count_alerts(
            conn, actor, AlertQuery(open_only=True, severity=(s,), team=teams, service=services_)
        )
        for s in widgets.SEVERITIES
    }


def _open_alerts(
    conn: Any, actor: Any, teams: tuple[str, ...], services_: tuple[str, ...]
) -> list[dict[str, Any]]:
    rows, _ = list_alerts(
        conn, actor, AlertQuery(open_only=True, team=teams, service=services_), limit=1000
    )
    return rows


def _kpis(teams: tuple[str, ...], services_: tuple[str, ...]) -> None:
    counts = services.attempt(
        "count the open alerts", services.cached, _open_by_severity, teams, services_
    )
    if counts is not None:
        for col, sev in zip(st.columns(5), widgets.SEVERITIES, strict=True):
            col.metric(f"{widgets.SEVERITY_ICON[sev]} Open {sev}", f"{counts[sev]:,}", border=True)
    if not services.can("analytics.read"):
        st.caption("🔒 Response times and delivery need the analytics.read permission.")
        return
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    midnight = now.replace(hour=0, minute=0)
    dims: dict[str, Any] = {"team": teams, "service": services_}
    today = Filters.of(start=midnight, end=now + timedelta(minutes=1), **dims)
    week = Filters.of(start=midnight - timedelta(days=7), end=midnight, **dims)
    hour = Filters.of(start=now - timedelta(hours=1), end=now + timedelta(minutes=1), **dims)
    cols = st.columns(4)
    for col, metric, label in ((cols[0], "mtta", "MTTA today"), (cols[1], "mttr", "MTTR today")):
        with col, services.guarded(f"compute {metric.upper()}"):
            now_s = services.analytics(response_times, today, metric)["overall"]["median"]
            before_s = services.analytics(response_times, week, metric)["overall"]["median"]
            delta = (
                None
                if now_s is None or before_s is None
                else f"{(now_s - before_s) / 60:+.1f} min vs 7 days"
            )
            st.metric(
                f"{label} (median)",
                _minutes(now_s),
                delta,
                delta_color="inverse",
                border=True,
                help=f"Median over today's alerts; the last 7 days: {_minutes(before_s)}.",
            )
    with cols[2], services.guarded("compute the ingest rate"):
        events_hour = services.analytics(volume, hour, by=None)["events"] or 0
        events_week = services.analytics(volume, week, by=None)["events"] or 0
        per_min, usual = events_hour / 60, events_week / (7 * 24 * 60)
        st.metric(
            "Ingest rate",
            f"{per_min:.1f}/min",
            f"{per_min - usual:+.1f} vs 7-day mean",
            delta_color="off",
            border=True,
            help="Events accepted per minute over the last hour.",
        )
    with cols[3], services.guarded("summarize deliveries"):
        day = Filters.of(start=now - timedelta(days=1), end=now + timedelta(minutes=1), **dims)
        sent = services.analytics(delivery, day)["total"]
        failing = sent["by_status"].get("failed", 0) + sent["by_status"].get("dead", 0)
        st.metric(
            "Notifications failing (24 h)",
            f"{failing:,}",
            f"of {sent['notifications']:,} sent",
            delta_color="off",
            border=True,
            help="Failed (being retried) or dead (gave up).",
        )


def _charts(teams: tuple[str, ...], services_: tuple[str, ...]) -> None:
    left, right = st.columns(2)
    with left, services.guarded("chart the alert volume"):
        if not services.can("analytics.read"):
            st.caption("🔒 The volume chart needs analytics.read.")
        else:
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            week = Filters.of(
                start=now - timedelta(days=7),
                end=now + timedelta(minutes=1),
                team=teams,
                service=services_,
            )
            series = services.analytics(volume, week, by="severity")["series"]
            fig = go.Figure()
            for sev in widgets.SEVERITIES:
                points = [p for p in series if p.get("severity") == sev]
                fig.add_bar(
                    x=[p["bucket"] for p in points],
                    y=[p["alerts"] for p in points],
                    name=sev,
                    marker_color=widgets.SEVERITY_COLORS[sev],
                )
            fig.update_layout(
                barmode="stack",
                title="Alerts per day, last 7 days",
                height=320,
                margin={"t": 40, "b": 10, "l": 10, "r": 10},
                legend_orientation="h",
            )
            st.plotly_chart(fig, width="stretch", key=f"{PAGE}.volume")
    with right, services.guarded("chart the open alerts"):
        rows = services.cached(_open_alerts, teams, services_)
        by_team = Counter(r["team"] or "(no team)" for r in rows)
        if not by_team:
            widgets.empty(
                "Nothing is open.", "Enjoy the quiet, or look at Analytics for the last weeks."
            )
        else:
            names = sorted(by_team, key=lambda t: -by_team[t])
            fig = go.Figure(
                go.Bar(
                    x=[by_team[t] for t in names], y=names, orientation="h", marker_color="#C2410C"
                )
            )
            fig.update_layout(
                title="Open alerts by team",
                height=320,
                yaxis_autorange="reversed",
                margin={"t": 40, "b": 10, "l": 10, "r": 10},
            )
            st.plotly_chart(fig, width="stretch", key=f"{PAGE}.by_team")


def _open_in_triage() -> None:
    state.OPEN_ALERT.set(st.session_state.get(f"{PAGE}.open"))


def _latest_critical(teams: tuple[str, ...], services_: tuple[str, ...]) -> None:
    st.subheader("Latest critical alerts", anchor=False)
    page = services.attempt(
        "load the critical alerts",
        services.cached,
        list_alerts,
        AlertQuery(severity=("critical",), team=teams, service=services_),
        limit=10,
    )
    if page is None:
        return
    rows, _ = page
    if not rows:
        widgets.empty("No critical alerts.", "Critical alerts from any source show up here first.")
        return
    widgets.alert_table(rows, key=f"{PAGE}.critical", selectable=False)
    pick, go_col = st.columns([4, 1], vertical_alignment="bottom")
    pick.selectbox(
        "Open in triage",
        [r["id"] for r in rows],
        key=f"{PAGE}.open",
        format_func=lambda i: f"#{i} · {next(r['title'] for r in rows if r['id'] == i)}",
    )
    if go_col.button("Open", key=f"{PAGE}.go", icon=":material/open_in_new:", width="stretch"):
        _open_in_triage()
        navigation.go("triage")


@st.fragment(run_every=timedelta(seconds=REFRESH_S))
def live(teams: tuple[str, ...], services_: tuple[str, ...]) -> None:
    _kpis(teams, services_)
    _charts(teams, services_)
    _latest_critical(teams, services_)
    st.caption(f"Updated {datetime.now(UTC):%H:%M:%S} UTC · refreshes every {REFRESH_S} s")


st.title("Overview")
facets = services.attempt("load the filter choices", services.cached, _open_alerts, (), ()) or []
choices = widgets.facets_of(facets)
left, right = st.columns(2)
teams = left.multiselect(
    "Team",
    choices["team"],
    key=f"{PAGE}.team",
    placeholder="all teams",
    accept_new_options=True,
    persist_state="session",
)
picked_services = right.multiselect(
    "Service",
    choices["service"],
    key=f"{PAGE}.service",
    placeholder="all services",
    accept_new_options=True,
    persist_state="session",
)
live(tuple(teams), tuple(picked_services))
