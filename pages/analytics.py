"""Analytics: response times, volume, noise, SLA, team load and delivery as charts with filters;
click a bar or point to see the alerts behind it; export what you see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import streamlit as st

from app import analytics_charts as charts
from app import backtest_panel, services, state, widgets
from engine.analytics import delivery, metrics, noise, sla, teams, volume
from engine.analytics.filters import Filters
from engine.store.alerts import AlertQuery, list_alerts

PAGE = "analytics"
DIMENSIONS = ("severity", "team", "service", "source", "rule")


def _facets(conn: Any, actor: Any) -> dict[str, list[str]]:
    rows, _ = list_alerts(conn, actor, AlertQuery(), limit=1000)
    return widgets.facets_of(rows)


def _filters() -> Filters | None:
    facets = services.attempt("load the filter choices", services.cached, _facets) or {}
    top = st.columns([2, 1, 2, 2])
    with top[0]:
        start, end = backtest_panel.period(PAGE, days=30)
    bucket = (
        top[1].segmented_control("Per", ["day", "week"], default="day", key=f"{PAGE}.bucket")
        or "day"
    )
    team = top[2].multiselect(
        "Team",
        facets.get("team", []),
        key=f"{PAGE}.team",
        accept_new_options=True,
        placeholder="all teams",
    )
    service = top[3].multiselect(
        "Service",
        facets.get("service", []),
        key=f"{PAGE}.service",
        accept_new_options=True,
        placeholder="all services",
    )
    more = st.columns(3)
    severity = more[0].multiselect(
        "Severity", widgets.SEVERITIES, key=f"{PAGE}.severity", placeholder="all severities"
    )
    source = more[1].multiselect(
        "Source",
        facets.get("source", []),
        key=f"{PAGE}.source",
        accept_new_options=True,
        placeholder="all sources",
    )
    rule = more[2].multiselect(
        "Rule",
        facets.get("rule", []),
        key=f"{PAGE}.rule",
        accept_new_options=True,
        placeholder="all rules",
    )
    return services.attempt(
        "use these filters",
        Filters.of,
        start=start,
        end=end,
        bucket=bucket,
        team=team,
        service=service,
        severity=severity,
        source=source,
        rule=rule,
    )


def _drill_from(event: Any, f: Filters, dim: str | None) -> None:
    """A clicked point (x = bucket, curve = a value of `dim`) becomes the drill-down."""
    points = (event.selection.points if event is not None else None) or []
    if not points:
        return
    p = points[0]
    start = widgets.when(str(p.get("x"))) if p.get("x") else None
    if start is None:
        return
    step = timedelta(days=7 if f.bucket == "week" else 1)
    value = (
        (p.get("customdata") or [None])[0]
        if isinstance(p.get("customdata"), list)
        else p.get("customdata")
    )
    state.DRILL.set(
        {
            "since": start.isoformat(),
            "until": (start + step).isoformat(),
            "dim": dim,
            "value": value,
        }
    )


def response_tab(f: Filters) -> None:
    by = st.segmented_control("Also by", ["none", *DIMENSIONS], default="none", key=f"{PAGE}.rt_by")
    cols = st.columns(3)
    results = {}
    for col, metric in zip(cols, ("mtta", "mttr", "mttd"), strict=True):
        r = services.analytics(metrics.response_times, f, metric, by=None)
        results[metric] = r
        o = r["overall"]
        col.metric(
            f"{metric.upper()} median",
            charts.duration(o["median"]),
            f"p90 {charts.duration(o['p90'])} · {o['count']:,} alerts",
            delta_color="off",
            border=True,
        )
    fig = charts.response_lines(results)
    event = st.plotly_chart(
        fig, width="stretch", key=f"{PAGE}.rt_chart", on_select="rerun", selection_mode="points"
    )
    _drill_from(event, f, None)
    if by and by != "none":
        grouped = services.analytics(metrics.response_times, f, "mtta", by=by)
        groups = grouped.get("groups") or []
        if groups:
            st.plotly_chart(
                charts.group_bars(groups, by, "MTTA median by " + by),
                width="stretch",
                key=f"{PAGE}.rt_groups",
            )
    rows = [
        {
            "metric": m,
            "bucket": s["bucket"],
            **{k: s[k] for k in ("count", "mean", "median", "p90")},
        }
        for m, r in results.items()
        for s in r["series"]
    ]
    widgets.export_buttons(rows, "response-times", key=f"{PAGE}.rt_export")


def volume_tab(f: Filters) -> None:
    by = (
        st.segmented_control("Split by", list(DIMENSIONS), default="severity", key=f"{PAGE}.vol_by")
        or "severity"
    )
    r = services.analytics(volume.volume, f, by=by)
    cols = st.columns(3)
    cols[0].metric("Alerts", f"{r['alerts']:,}", border=True)
    cols[1].metric("Occurrences per alert", f"{(r['occurrences_per_alert'] or 0):.1f}", border=True)
    cols[2].metric("Events received", f"{(r['events'] or 0):,}", border=True)
    if not r["series"]:
        widgets.empty("No alerts in this period.", "Widen the period or clear a filter.")
        return
    event = st.plotly_chart(
        charts.stacked(r["series"], by, f"Alerts per {f.bucket} by {by}"),
        width="stretch",
        key=f"{PAGE}.vol_chart",
        on_select="rerun",
        selection_mode="points",
    )
    _drill_from(event, f, by)
    widgets.export_buttons(r["series"], "volume", key=f"{PAGE}.vol_export")


def noise_tab(f: Filters) -> None:
    r = services.analytics(noise.noise, f)
    cols = st.columns(3)
    cols[0].metric(
        "Auto-resolved, never acknowledged",
        f"{(r['auto_resolved_share'] or 0):.0%}",
        f"{r['auto_resolved']:,} alerts",
        delta_color="off",
        border=True,
    )
    cols[1].metric(
        "False positives",
        f"{(r['false_positive_share'] or 0):.0%}",
        f"{r['false_positives']:,} alerts",
        delta_color="off",
        border=True,
    )
    cols[2].metric("Occurrences", f"{int(r['occurrences'] or 0):,}", border=True)
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            charts.top_bars(r.get("rules") or [], "rule", "alerts", "Noisiest rules"),
            width="stretch",
            key=f"{PAGE}.noise_rules",
        )
    with right:
        fingerprints = r.get("fingerprints") or []
        label = "title" if fingerprints and "title" in fingerprints[0] else "fingerprint"
        st.plotly_chart(
            charts.top_bars(
                fingerprints,
                label,
                "occurrences" if fingerprints and "occurrences" in fingerprints[0] else "alerts",
                "Noisiest alerts",
            ),
            width="stretch",
            key=f"{PAGE}.noise_fps",
        )
    st.markdown("**Flapping** (fired again and again within an hour)")
    flaps = services.analytics(noise.flapping, f)["series"]
    if flaps:
        st.dataframe(
            pl.DataFrame(flaps, infer_schema_length=None), hide_index=True, key=f"{PAGE}.flapping"
        )
    else:
        st.caption("Nothing flapped in this period.")
    widgets.export_buttons((r.get("rules") or []) + flaps, "noise", key=f"{PAGE}.noise_export")


def sla_tab(f: Filters) -> None:
    goals = services.read(lambda conn, _actor: sla.targets(conn))
    r = services.analytics(sla.sla, f, goals)
    t = r["total"]
    cols = st.columns(2)
    cols[0].metric(
        "Acknowledged late",
        f"{(t['ack_breach_rate'] or 0):.0%}",
        f"{t['ack_breaches']:,} of {t['alerts']:,}",
        delta_color="off",
        border=True,
    )
    cols[1].metric(
        "Resolved late",
        f"{(t['resolve_breach_rate'] or 0):.0%}",
        f"{t['resolve_breaches']:,} of {t['alerts']:,}",
        delta_color="off",
        border=True,
    )
    st.plotly_chart(charts.sla_bars(r["severities"]), width="stretch", key=f"{PAGE}.sla_chart")
    st.caption("Targets per severity are set under Admin → Settings.")
    widgets.export_buttons(r["severities"], "sla", key=f"{PAGE}.sla_export")


def teams_tab(f: Filters) -> None:
    def load(conn: Any, actor: Any) -> Any:
        actor.require("analytics.read")
        return teams.people(conn)

    team_frame, members = services.read(load)
    r = services.analytics(teams.team_load, f, team_frame, members)
    rows = r.get("teams") or []
    if not rows:
        widgets.empty(
            "No team load in this period.", "Alerts need a team (rules and routes set one)."
        )
        return
    st.plotly_chart(charts.team_bars(rows), width="stretch", key=f"{PAGE}.teams_chart")
    st.dataframe(
        pl.DataFrame(rows, infer_schema_length=None), hide_index=True, key=f"{PAGE}.teams_table"
    )
    if r.get("people"):
        st.dataframe(
            pl.DataFrame(r["people"], infer_schema_length=None),
            hide_index=True,
            key=f"{PAGE}.people_table",
        )
    widgets.export_buttons(rows + (r.get("people") or []), "team-load", key=f"{PAGE}.teams_export")


def delivery_tab(f: Filters) -> None:
    r = services.analytics(delivery.delivery, f)
    t = r["total"]
    cols = st.columns(3)
    cols[0].metric("Notifications", f"{t['notifications']:,}", border=True)
    cols[1].metric("Failure rate", f"{(t['failure_rate'] or 0):.1%}", border=True)
    cols[2].metric("Median latency", charts.duration(t["latency_s"]["median"]), border=True)
    if r["channels"]:
        st.plotly_chart(
            charts.delivery_bars(r["channels"]), width="stretch", key=f"{PAGE}.delivery_chart"
        )
    else:
        widgets.empty(
            "No notifications in this period.",
            "Add channels under Notifications and name them in rules.",
        )
    widgets.export_buttons(r["channels"], "delivery", key=f"{PAGE}.delivery_export")


def drill(f: Filters) -> None:
    d = state.DRILL.get()
    if not d:
        st.caption("Click a bar or a point to see the alerts behind it.")
        return
    since, until = widgets.when(d["since"]), widgets.when(d["until"])
    dims: dict[str, Any] = {
        name: tuple(getattr(f, name)) for name in ("team", "service", "severity", "source", "rule")
    }
    if d.get("dim") and d.get("value"):
        dims[d["dim"]] = (str(d["value"]),)
    query = AlertQuery(status=(), since=since, until=until, **dims)
    head, clear = st.columns([4, 1])
    head.subheader(
        f"Alerts created {d['since'][:10]}"
        + (f" · {d['dim']} = {d['value']}" if d.get("dim") and d.get("value") else ""),
        anchor=False,
    )
    clear.button("Clear", key=f"{PAGE}.drill_clear", on_click=state.DRILL.reset)
    rows, _ = services.cached(list_alerts, query, limit=1000)
    if not rows:
        st.caption("No alerts behind that point.")
        return
    widgets.alert_table(rows, key=f"{PAGE}.drill_table", selectable=False)
    widgets.export_buttons(rows, "drill-down", key=f"{PAGE}.drill_export")


def report(f: Filters) -> None:
    """The period's PDF report (every tab on two pages), built when asked for."""
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.markdown(
        f"**PDF report** of {f.start:%Y-%m-%d} – {f.end:%Y-%m-%d} with these filters: KPIs, "
        "charts, SLA, team load, delivery."
    )
    if not right.button("Build the PDF", key=f"{PAGE}.pdf", icon=":material/picture_as_pdf:"):
        return
    with st.spinner("Building the report…"):
        pdf = services.attempt("build the report", services.report_pdf, f)
    if pdf is not None:
        st.download_button(
            f"Download the report ({len(pdf) // 1024:,} KB)",
            data=pdf,
            file_name=f"klaxon-report-{f.start:%Y%m%d}-{f.end:%Y%m%d}.pdf",
            mime="application/pdf",
            key=f"{PAGE}.pdf_download",
            type="primary",
            icon=":material/file_download:",
            on_click="ignore",
        )


st.title("Analytics")
f = _filters()
if f is None:
    st.stop()
sections = [
    ("Response times", response_tab),
    ("Volume", volume_tab),
    ("Noise", noise_tab),
    ("SLA", sla_tab),
    ("Team load", teams_tab),
    ("Delivery", delivery_tab),
]
tabs = st.tabs([label for label, _ in sections], key=f"{PAGE}.tab", on_change="rerun")
for tab, (label, draw) in zip(tabs, sections, strict=True):
    if tab.open:
        with tab, services.guarded(f"show {label.lower()}"):
            draw(f)
st.divider()
with services.guarded("show the alerts behind the chart"):
    drill(f)
st.divider()
report(f)
