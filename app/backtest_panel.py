"""The rules page's backtest: the text being edited against the current rules over a past
period of stored events, with progress while it runs and charts of what would have fired."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from app import services, state, widgets
from engine.config import settings


def period(page: str, days: int = 7) -> tuple[datetime, datetime]:
    """A date range picker; the period is [first day 00:00, day after the last 00:00) UTC."""
    today = datetime.now(UTC).date()
    picked = st.date_input(
        "Period (UTC days)",
        value=(today - timedelta(days=days), today),
        max_value=today,
        key=f"{page}.period",
    )
    days_ = [d for d in (picked if isinstance(picked, tuple) else (picked,)) if isinstance(d, date)]
    first, last = (days_[0], days_[-1]) if days_ else (today, today)
    return datetime.combine(first, time(), UTC), datetime.combine(last, time(), UTC) + timedelta(
        days=1
    )


def run_with_progress(label: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """Run a long analytics call, showing a progress bar fed by its progress(done, total)."""
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="reading the period's events…")

        def progress(done: int, total: int) -> None:
            share = min(1.0, done / total) if total else 1.0
            bar.progress(share, text=f"{done:,} of {total:,} events")

        result = services.attempt(label.lower().rstrip("…"), fn, *args, progress=progress, **kwargs)
        if result is None:
            status.update(label="Failed", state="error")
        else:
            status.update(
                label=f"Done: {result['events']:,} events in {result['seconds']:.1f} s",
                state="complete",
                expanded=False,
            )
    return result


def _run(page: str, text: str, start: datetime, end: datetime) -> None:
    from engine.analytics.backtest import backtest

    services.actor().require("rules.read")
    result = run_with_progress(
        "Running the backtest…",
        backtest,
        services.database(),
        services.warehouse(),
        text,
        start,
        end,
        default_rules=settings().rules_file,
    )
    if result is not None:
        state.BACKTEST.set(result)


def show(page: str, text: str, errors: list[Any]) -> None:
    st.caption(
        "Runs the rules in the editor and the current rules over the stored events of a period "
        "and compares what each would have raised and paged."
    )
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    with left:
        start, end = period(page)
    if right.button(
        "Run backtest",
        key=f"{page}.backtest",
        type="primary",
        icon=":material/play_arrow:",
        disabled=bool(errors),
        width="stretch",
        help="Fix the errors first." if errors else None,
    ):
        with services.guarded("run the backtest"):
            _run(page, text, start, end)
    result = state.BACKTEST.get()
    if not result:
        widgets.empty("No backtest yet.", "Pick a period and press “Run backtest”.")
        return
    _report(page, result)


def _report(page: str, r: dict[str, Any]) -> None:
    t = r["totals"]
    st.caption(
        f"{r['from'][:10]} → {r['to'][:10]} · {r['events']:,} events"
        + (" · the editor holds the current rules" if r["same_as_current"] else "")
    )
    cols = st.columns(4)
    cols[0].metric(
        "Alerts (these rules)",
        f"{t['alerts']:,}",
        f"{t['alerts'] - t['current_alerts']:+,} vs current",
        delta_color="inverse",
        border=True,
    )
    cols[1].metric(
        "Pages (these rules)",
        f"{t['pages']:,}",
        f"{t['pages'] - t['current_pages']:+,} vs current",
        delta_color="inverse",
        border=True,
    )
    cols[2].metric("Alerts (current rules)", f"{t['current_alerts']:,}", border=True)
    cols[3].metric("Alerts stored for the period", f"{t['stored_alerts']:,}", border=True)
    _over_time(page, r)
    rules = [row for row in r["rules"] if row["alerts"] or row["current_alerts"]]
    if rules:
        names = [row["rule"] for row in rules][:30]
        fig = go.Figure()
        fig.add_bar(
            y=names,
            x=[row["alerts"] for row in rules][:30],
            name="these rules",
            orientation="h",
            marker_color="#C2410C",
        )
        fig.add_bar(
            y=names,
            x=[row["current_alerts"] for row in rules][:30],
            name="current rules",
            orientation="h",
            marker_color="#9CA3AF",
        )
        fig.update_layout(
            barmode="group",
            title="Alerts per rule",
            height=160 + 28 * len(names),
            yaxis_autorange="reversed",
            margin={"t": 40, "b": 10, "l": 10, "r": 10},
            legend_orientation="h",
        )
        st.plotly_chart(fig, width="stretch", key=f"{page}.backtest_chart")
    frame = pl.DataFrame(r["rules"], infer_schema_length=None) if r["rules"] else pl.DataFrame()
    st.dataframe(frame, hide_index=True, key=f"{page}.backtest_table")
    if r["unresolved_targets"]:
        st.warning(
            "Targets no channel, team, user or schedule answers to: "
            + ", ".join(f"{u['target']} ({u['pages']})" for u in r["unresolved_targets"])
        )
    widgets.export_buttons(r["rules"], "backtest", key=f"{page}.backtest_export")


BUCKET_NAMES = {"1h": "hour", "1d": "day"}


def _over_time(page: str, r: dict[str, Any]) -> None:
    """Alerts fired per hour or day over the period: these rules against the current ones."""
    series = r.get("series") or []
    if not series:
        return
    bucket = BUCKET_NAMES.get(r.get("bucket", ""), r.get("bucket", ""))
    at = [row["at"] for row in series]
    fig = go.Figure()
    fig.add_scatter(
        x=at,
        y=[row["alerts"] for row in series],
        name="these rules",
        mode="lines+markers",
        line={"color": "#C2410C", "shape": "hv"},
    )
    fig.add_scatter(
        x=at,
        y=[row["current_alerts"] for row in series],
        name="current rules",
        mode="lines+markers",
        line={"color": "#9CA3AF", "shape": "hv", "dash": "dot"},
    )
    fig.update_layout(
        title=f"Alerts fired per {bucket} (UTC)",
        height=300,
        margin={"t": 40, "b": 10, "l": 10, "r": 10},
        legend_orientation="h",
        yaxis_title="alerts",
        yaxis_rangemode="tozero",
        hovermode="x unified",
    )
    st.plotly_chart(fig, width="stretch", key=f"{page}.backtest_series_chart")
    widgets.export_buttons(
        series,
        f"backtest-per-{bucket}",
        key=f"{page}.backtest_series_export",
        label=f"Export per {bucket}",
    )
