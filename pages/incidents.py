"""Incidents: the groups `correlate` blocks made, over time, and the alerts of each."""

from __future__ import annotations

from collections import Counter

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from app import alert_view, services, state, widgets
from engine.store.incidents import get_incident, list_incidents

PAGE = "incidents"

st.title("Incidents")
top = st.columns([2, 1, 1], vertical_alignment="bottom")
status = (
    top[0].segmented_control(
        "Status",
        ["open", "resolved", "all"],
        default="open",
        key=f"{PAGE}.status",
        persist_state="session",
    )
    or "all"
)
limit = top[1].selectbox(
    "Show", (100, 250, 500, 1000), key=f"{PAGE}.limit", format_func=lambda n: f"latest {n}"
)
incidents = services.need(
    "load the incidents",
    services.cached,
    list_incidents,
    status=None if status == "all" else status,
    limit=limit,
)
with top[2]:
    widgets.export_buttons(incidents, "incidents", key=f"{PAGE}.export")
if not incidents:
    widgets.empty(
        f"No {'' if status == 'all' else status + ' '}incidents.",
        "Incidents come from `correlate` blocks in the rules (see Rules): alerts with equal `by` "
        "values within a time window are grouped. Try the status “all”.",
    )
    st.stop()

per_day = Counter((i["opened_at"][:10], i["severity"]) for i in incidents)
fig = go.Figure()
for sev in widgets.SEVERITIES:
    days = sorted(d for d, s in per_day if s == sev)
    if days:
        fig.add_bar(
            x=days,
            y=[per_day[(d, sev)] for d in days],
            name=sev,
            marker_color=widgets.SEVERITY_COLORS[sev],
        )
fig.update_layout(
    barmode="stack",
    title="Incidents opened per day",
    height=260,
    margin={"t": 40, "b": 10, "l": 10, "r": 10},
    legend_orientation="h",
)
st.plotly_chart(fig, width="stretch", key=f"{PAGE}.chart")

frame = pl.DataFrame(
    {
        "id": [i["id"] for i in incidents],
        "severity": [
            f"{widgets.SEVERITY_ICON.get(i['severity'], '')} {i['severity']}" for i in incidents
        ],
        "status": [i["status"] for i in incidents],
        "title": [i["title"] or i["key"] for i in incidents],
        "alerts": [i["alert_count"] for i in incidents],
        "opened": [widgets.when(i["opened_at"]) for i in incidents],
        "resolved": [widgets.when(i["resolved_at"]) for i in incidents],
        "correlate": [i["correlate"] for i in incidents],
    },
    schema_overrides={"opened": pl.Datetime("us", "UTC"), "resolved": pl.Datetime("us", "UTC")},
)
event = st.dataframe(
    frame,
    hide_index=True,
    key=f"{PAGE}.table",
    on_select="rerun",
    selection_mode="single-row",
    height=300,
    column_config={
        "id": st.column_config.NumberColumn("#", format="%d", width="small"),
        "title": st.column_config.TextColumn("Title", width="large"),
        "opened": st.column_config.DatetimeColumn("Opened", format="YYYY-MM-DD HH:mm"),
        "resolved": st.column_config.DatetimeColumn("Resolved", format="YYYY-MM-DD HH:mm"),
    },
)
rows = event.selection.rows if event is not None else []
if rows:
    state.OPEN_INCIDENT.set(int(frame["id"][rows[0]]))
titles = {i["id"]: i["title"] or i["key"] for i in incidents}
st.session_state[f"{PAGE}.open"] = (
    state.OPEN_INCIDENT.get() if state.OPEN_INCIDENT.get() in titles else None
)
st.selectbox(
    "Open an incident",
    [None, *titles],
    key=f"{PAGE}.open",
    format_func=lambda i: "— pick an incident (or a row) —" if i is None else f"#{i} · {titles[i]}",
    placeholder="pick an incident (or a row)",
    on_change=lambda: state.OPEN_INCIDENT.set(st.session_state.get(f"{PAGE}.open")),
)
incident_id = state.OPEN_INCIDENT.get()
if incident_id is None or incident_id not in titles:
    st.stop()

incident = services.need("load the incident", services.read, get_incident, incident_id)
st.subheader(
    f"{widgets.SEVERITY_ICON.get(incident['severity'], '')} "
    f"Incident #{incident['id']} {incident['title']}",
    anchor=False,
)
st.caption(
    f"{incident['status']} · opened {widgets.ago(incident['opened_at'])} · "
    f"{incident['alert_count']} alerts · grouped by `{incident['correlate']}` on {incident['key']}"
)
alerts = incident["alerts"]
if not alerts:
    widgets.empty("This incident has no alerts left.", "Its alerts may have been deleted.")
    st.stop()
opened = [widgets.when(a["created_at"]) for a in alerts]
timeline = go.Figure(
    go.Scatter(
        x=opened,
        y=[a["title"] or a["rule"] for a in alerts],
        mode="markers",
        marker={
            "size": 12,
            "color": [widgets.SEVERITY_COLORS.get(a["severity"], "#999") for a in alerts],
        },
        text=[f"#{a['id']} {a['status']}" for a in alerts],
    )
)
timeline.update_layout(
    title="Its alerts over time",
    height=220 + 12 * len({a["title"] for a in alerts}),
    margin={"t": 40, "b": 10, "l": 10, "r": 10},
)
st.plotly_chart(timeline, width="stretch", key=f"{PAGE}.timeline")
picked = widgets.alert_table(alerts, key=f"{PAGE}.alerts")
if len(picked) == 1:
    st.divider()
    alert_view.show(picked[0], PAGE)
else:
    st.caption("Select one alert to see it in full and act on it.")
