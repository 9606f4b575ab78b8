"""Plotly figures of the analytics results (engine.analytics shapes in, figures out).

Traces carry the value they stand for in `customdata`, so a clicked point says which team,
severity or rule it is (the analytics page turns that into a drill-down).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from app.widgets import SEVERITIES, SEVERITY_COLORS

MARGIN = {"t": 40, "b": 10, "l": 10, "r": 10}
PALETTE = ("#C2410C", "#2563EB", "#16A34A", "#9333EA", "#CA8A04", "#0891B2", "#DB2777", "#4B5563")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _layout(fig: go.Figure, title: str, height: int = 340, **kwargs: Any) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=MARGIN, legend_orientation="h", **kwargs)
    return fig


def response_lines(results: dict[str, dict[str, Any]]) -> go.Figure:
    """Median (solid) and p90 (dotted) per bucket, in minutes, one colour per metric."""
    fig = go.Figure()
    for (metric, r), color in zip(results.items(), PALETTE, strict=False):
        xs = [s["bucket"] for s in r["series"]]
        fig.add_scatter(
            x=xs,
            y=[_min(s["median"]) for s in r["series"]],
            name=f"{metric.upper()} median",
            mode="lines+markers",
            line={"color": color},
        )
        fig.add_scatter(
            x=xs,
            y=[_min(s["p90"]) for s in r["series"]],
            name=f"{metric.upper()} p90",
            mode="lines",
            line={"color": color, "dash": "dot"},
        )
    return _layout(fig, "Response times (minutes)", yaxis_title="minutes")


def _min(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def group_bars(groups: list[dict[str, Any]], by: str, title: str) -> go.Figure:
    names = [str(g.get(by) or "(none)") for g in groups][:30]
    fig = go.Figure(
        go.Bar(
            x=[_min(g["median"]) for g in groups][:30],
            y=names,
            orientation="h",
            marker_color=PALETTE[0],
            customdata=names,
        )
    )
    return _layout(
        fig, title, height=160 + 24 * len(names), yaxis_autorange="reversed", xaxis_title="minutes"
    )


def stacked(series: list[dict[str, Any]], by: str, title: str) -> go.Figure:
    """Alerts per bucket, one stacked trace per value of `by` (severities in their order)."""
    values = list(dict.fromkeys(str(s.get(by)) for s in series))
    if by == "severity":
        values = [v for v in SEVERITIES if v in values]
    fig = go.Figure()
    for i, v in enumerate(values):
        points = [s for s in series if str(s.get(by)) == v]
        color = SEVERITY_COLORS.get(v) if by == "severity" else PALETTE[i % len(PALETTE)]
        fig.add_bar(
            x=[p["bucket"] for p in points],
            y=[p["alerts"] for p in points],
            name=v,
            marker_color=color,
            customdata=[v] * len(points),
        )
    return _layout(fig, title, barmode="stack", clickmode="event+select")


def top_bars(rows: list[dict[str, Any]], label: str, value: str, title: str) -> go.Figure:
    names = [str(r.get(label) or "—")[:60] for r in rows]
    fig = go.Figure(
        go.Bar(x=[r.get(value) for r in rows], y=names, orientation="h", marker_color=PALETTE[0])
    )
    return _layout(fig, title, height=140 + 26 * max(1, len(names)), yaxis_autorange="reversed")


def sla_bars(rows: list[dict[str, Any]]) -> go.Figure:
    names = [r["severity"] for r in rows]
    fig = go.Figure()
    fig.add_bar(
        x=names,
        y=[(r["ack_breach_rate"] or 0) * 100 for r in rows],
        name="acknowledged late",
        marker_color=PALETTE[0],
    )
    fig.add_bar(
        x=names,
        y=[(r["resolve_breach_rate"] or 0) * 100 for r in rows],
        name="resolved late",
        marker_color=PALETTE[1],
    )
    return _layout(fig, "SLA breaches by severity (% of alerts)", barmode="group", yaxis_title="%")


def team_bars(rows: list[dict[str, Any]]) -> go.Figure:
    names = [str(r["team"] or "(no team)") for r in rows]
    fig = go.Figure()
    fig.add_bar(
        x=names,
        y=[r["alerts_per_member"] for r in rows],
        name="alerts per member",
        marker_color=PALETTE[0],
        customdata=names,
    )
    fig.add_bar(
        x=names,
        y=[r["after_hours_pages"] for r in rows],
        name="after-hours pages",
        marker_color=PALETTE[3],
        customdata=names,
    )
    return _layout(fig, "Team load", barmode="group")


def delivery_bars(channels: list[dict[str, Any]]) -> go.Figure:
    names = [c["channel"] for c in channels]
    fig = go.Figure()
    colors = {
        "sent": "#16A34A",
        "failed": "#F59E0B",
        "dead": "#B91C1C",
        "pending": "#9CA3AF",
        "held": "#A78BFA",
        "suppressed": "#D1D5DB",
    }
    for status, color in colors.items():
        ys = [c["by_status"].get(status, 0) for c in channels]
        if any(ys):
            fig.add_bar(x=names, y=ys, name=status, marker_color=color)
    return _layout(fig, "Notifications by channel and outcome", barmode="stack")
