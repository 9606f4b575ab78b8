"""Silences and maintenance windows: create (also from an alert), preview, list and expire."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from app import backtest_panel, services, state, widgets
from engine.config import settings
from engine.store.silences import (
    SilenceError,
    SilenceSpec,
    create_silence,
    expire_silence,
    list_silences,
    validate,
)

PAGE = "silences"
DAYS = ("daily", "mon-fri", "sat,sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONES = (
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
)


def _spec() -> SilenceSpec:
    """The silence the form describes now."""
    ss = st.session_state
    matcher = (ss.get(f"{PAGE}.matcher") or "").strip()
    comment = (ss.get(f"{PAGE}.comment") or "").strip()
    if ss.get(f"{PAGE}.kind") == "Recurring window":
        start, end = ss.get(f"{PAGE}.from_time") or time(22), ss.get(f"{PAGE}.to_time") or time(6)
        days, zone = ss.get(f"{PAGE}.days") or "daily", ss.get(f"{PAGE}.tz") or "UTC"
        during = f'{days} {start:%H:%M}-{end:%H:%M} in "{zone}"'
        return SilenceSpec(matcher=matcher, during=during, comment=comment)
    hours = float(ss.get(f"{PAGE}.hours") or 2)
    starts = datetime.now(UTC).replace(second=0, microsecond=0)
    return SilenceSpec(
        matcher=matcher, starts_at=starts, ends_at=starts + timedelta(hours=hours), comment=comment
    )


def _create() -> None:
    spec = _spec()
    made = services.attempt("create the silence", services.write, create_silence, spec)
    if made is not None:
        st.toast(f"Silence #{made['id']} is in place", icon=":material/notifications_off:")
        state.SILENCE_DRAFT.reset()
        st.session_state[f"{PAGE}.matcher"] = ""


def _expire(silence_id: int) -> None:
    done = services.attempt(
        f"expire silence #{silence_id}", services.write, expire_silence, silence_id
    )
    if done is not None:
        st.toast(f"Silence #{silence_id} expired", icon=":material/notifications_active:")


def _form() -> None:
    if not services.can("silences.write"):
        st.caption("🔒 Your role can see silences but not create or expire them.")
        return
    draft = state.SILENCE_DRAFT.get()
    if draft:
        st.session_state[f"{PAGE}.matcher"] = draft
        state.SILENCE_DRAFT.reset()
        st.info(
            "Prefilled from the alert you chose: it matches its rule and key.",
            icon=":material/content_copy:",
        )
    with st.container(border=True):
        st.markdown("**New silence**")
        left, right = st.columns([3, 2], gap="medium")
        with left:
            widgets.live_text_area(
                "Which alerts (a rule-language condition over alerts)",
                f"{PAGE}.matcher",
                height=100,
                placeholder='service == "checkout" and severity != "critical"',
            )
            st.text_input(
                "Why", key=f"{PAGE}.comment", placeholder="e.g. database upgrade, ticket OPS-123"
            )
        with right:
            kind = st.segmented_control(
                "Kind",
                ["For a while", "Recurring window"],
                default="For a while",
                key=f"{PAGE}.kind",
            )
            if kind == "Recurring window":
                st.selectbox("Days", DAYS, key=f"{PAGE}.days", accept_new_options=True)
                a, b = st.columns(2)
                a.time_input("From", time(22, 0), key=f"{PAGE}.from_time", step=900)
                b.time_input("To", time(6, 0), key=f"{PAGE}.to_time", step=900)
                st.selectbox("Time zone", ZONES, key=f"{PAGE}.tz", accept_new_options=True)
            else:
                st.number_input(
                    "Hours from now",
                    min_value=0.25,
                    max_value=24 * 30.0,
                    value=2.0,
                    step=0.5,
                    key=f"{PAGE}.hours",
                )
        spec = _spec()
        problem = None
        if spec.matcher:
            try:
                validate(spec)
            except SilenceError as err:
                problem = err
        if problem is not None:
            st.error(str(problem), icon=":material/error:")
            for e in problem.errors:
                st.code(e["text"], language=None)
        elif spec.matcher:
            st.caption("Runs as:")
            st.code(_block(spec), language=None)
        st.button(
            "Create silence",
            key=f"{PAGE}.create",
            type="primary",
            on_click=_create,
            disabled=not spec.matcher or problem is not None,
            icon=":material/notifications_off:",
        )
        if spec.matcher and problem is None:
            _preview(spec)


def _preview(spec: SilenceSpec) -> None:
    """What this silence would have muted over a past period, as if it had been in place."""
    from engine.analytics.preview import ProposedSilence, preview_silence

    with st.expander("Preview: what would it have muted?", icon=":material/preview:"):
        st.caption(
            "Runs the current rules over a past period's events with this silence in place "
            "(a recurring window only in its hours) and counts the alerts it mutes."
        )
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        with left:
            start, end = backtest_panel.period(PAGE, days=7)
        proposed = ProposedSilence(
            matcher=spec.matcher, during=spec.during, comment=spec.comment or "preview"
        )
        if right.button("Preview", key=f"{PAGE}.preview", icon=":material/play_arrow:"):
            services.actor().require("alerts.read")
            result = backtest_panel.run_with_progress(
                "Previewing the silence…",
                preview_silence,
                services.database(),
                services.warehouse(),
                proposed,
                start,
                end,
                default_rules=settings().rules_file,
            )
            if result is not None:
                state.PREVIEW.set({"for": repr(proposed), **result})
        result = state.PREVIEW.get()
        if not result or result.get("for") != repr(proposed):
            st.caption("Pick a period and press Preview.")
            return
        cols = st.columns(3)
        cols[0].metric("Alerts it mutes", f"{result['alerts']:,}", border=True)
        cols[1].metric("Already muted otherwise", f"{result['already_muted']:,}", border=True)
        cols[2].metric("Pages it saves", f"{result['pages_saved']:,}", border=True)
        if not result["alerts"]:
            st.caption("It would have muted nothing in this period: check the condition.")
            return
        by_rule = result["by_rule"][:20]
        fig = go.Figure(
            go.Bar(
                x=[r["alerts"] for r in by_rule],
                y=[r["rule"] for r in by_rule],
                orientation="h",
                marker_color="#C2410C",
            )
        )
        fig.update_layout(
            title="Muted alerts by rule",
            height=140 + 24 * len(by_rule),
            yaxis_autorange="reversed",
            margin={"t": 40, "b": 10, "l": 10, "r": 10},
        )
        st.plotly_chart(fig, width="stretch", key=f"{PAGE}.preview_chart")
        st.dataframe(
            pl.DataFrame(result["sample"], infer_schema_length=None),
            hide_index=True,
            key=f"{PAGE}.preview_sample",
        )


def _block(spec: SilenceSpec) -> str:
    lines = [f'silence … "{spec.comment}"', f"  when {spec.matcher}"]
    if spec.starts_at:
        lines.append(f"  from {spec.starts_at:%Y-%m-%dT%H:%M:%SZ}")
    if spec.ends_at:
        lines.append(f"  until {spec.ends_at:%Y-%m-%dT%H:%M:%SZ}")
    if spec.during:
        lines.append(f"  during {spec.during}")
    return "\n".join([*lines, "end"])


def _gantt(rows: list[dict[str, Any]]) -> None:
    timed = [r for r in rows if r["starts_at"] or r["ends_at"]]
    if not timed:
        return
    now = datetime.now(UTC)
    fig = go.Figure()
    for r in timed[:40]:
        start = widgets.when(r["starts_at"]) or widgets.when(r["created_at"]) or now
        end = widgets.when(r["expired_at"]) or widgets.when(r["ends_at"]) or now + timedelta(days=1)
        fig.add_trace(
            go.Scatter(
                x=[start, end],
                y=[f"#{r['id']}"] * 2,
                mode="lines",
                line={"width": 12, "color": "#C2410C" if r["active"] else "#9CA3AF"},
                name=f"#{r['id']}",
                hovertext=r["matcher"],
                showlegend=False,
            )
        )
    fig.add_vline(x=now, line_dash="dot")
    fig.update_layout(
        title="When they mute (orange: active now)",
        height=160 + 18 * len(timed[:40]),
        margin={"t": 40, "b": 10, "l": 10, "r": 10},
    )
    st.plotly_chart(fig, width="stretch", key=f"{PAGE}.gantt")


st.title("Silences and maintenance")
_form()
st.subheader("Silences", anchor=False)
show = (
    st.segmented_control("Show", ["active", "all"], default="active", key=f"{PAGE}.show") or "all"
)
rows = services.need(
    "load the silences", services.cached, list_silences, active=True if show == "active" else None
)
if not rows:
    widgets.empty(
        "No active silences." if show == "active" else "No silences yet.",
        "Create one above, or use “Silence similar” on an alert in Triage. Recurring windows "
        "(e.g. every night's backups) are `during` silences.",
    )
    st.stop()
_gantt(rows)
frame = pl.DataFrame(
    {
        "id": [r["id"] for r in rows],
        "active": [r["active"] for r in rows],
        "matcher": [r["matcher"] for r in rows],
        "window": [
            r["during"] or f"{(r['starts_at'] or '…')[:16]} → {(r['ends_at'] or '…')[:16]}"
            for r in rows
        ],
        "why": [r["comment"] for r in rows],
        "by": [r["created_by"] for r in rows],
        "expired": [(r["expired_at"] or "")[:16] for r in rows],
    }
)
st.dataframe(
    frame,
    hide_index=True,
    key=f"{PAGE}.table",
    column_config={"matcher": st.column_config.TextColumn(width="large")},
)
action, export = st.columns([3, 1], vertical_alignment="bottom")
with export:
    widgets.export_buttons(rows, "silences", key=f"{PAGE}.export")
live_ids = [r["id"] for r in rows if r["active"] or not r["expired_at"]]
if services.can("silences.write") and live_ids:
    with action:
        pick, go_col = st.columns([3, 1], vertical_alignment="bottom")
        chosen = pick.selectbox(
            "Expire a silence",
            live_ids,
            key=f"{PAGE}.expire_pick",
            format_func=lambda i: f"#{i} · {next(r['matcher'] for r in rows if r['id'] == i)[:80]}",
        )
        go_col.button(
            "Expire now", key=f"{PAGE}.expire", on_click=_expire, args=(chosen,), width="stretch"
        )
