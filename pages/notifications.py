"""Notifications: channels (add, test, enable), the delivery log with failures and retries,
escalation policies, the on-call calendar (who is on call now and next), and the notification
settings of teams (default and fallback channels, escalation policy, quiet hours) and people
(contact channels, time zone, quiet hours)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from app import alert_view, services, widgets
from engine.notify import channels, policies, records, schedules
from engine.notify.deliver import send_test_message

PAGE = "notifications"
STATUS_COLORS = {
    "sent": "#16A34A",
    "pending": "#9CA3AF",
    "held": "#A78BFA",
    "sending": "#60A5FA",
    "failed": "#F59E0B",
    "dead": "#B91C1C",
    "suppressed": "#D1D5DB",
}


def _done(what: str, result: Any) -> None:
    if result is not None:
        st.toast(what, icon=":material/check:")


# ---------------------------------------------------------------- channels


def _add_channel() -> None:
    ss = st.session_state
    rate = int(ss.get(f"{PAGE}.ch_rate") or 0) or None
    made = services.attempt(
        "add the channel",
        services.write,
        channels.add_channel,
        (ss.get(f"{PAGE}.ch_name") or "").strip(),
        (ss.get(f"{PAGE}.ch_url") or "").strip(),
        description=ss.get(f"{PAGE}.ch_desc") or "",
        rate_limit_per_min=rate,
    )
    if made is not None:
        _done(f"Channel {made['name']} added", made)
        for k in ("ch_name", "ch_url", "ch_desc"):
            ss[f"{PAGE}.{k}"] = ""


def _test_channel(name: str) -> None:
    result = services.attempt(f"test channel {name}", services.with_db, send_test_message, name)
    services.changed()
    if result is None:
        return
    if result["ok"]:
        st.toast(
            f"Test message sent through {name} in {result['duration_ms']:.0f} ms",
            icon=":material/check:",
        )
    else:
        st.warning(f"The test message through {name} failed: {result['error']}")


def _toggle_channel(name: str, enabled: bool) -> None:
    done = services.attempt(
        f"change {name}", services.write, channels.update_channel, name, is_enabled=enabled
    )
    _done(f"{name} {'enabled' if enabled else 'disabled'}", done)


def _delete_channel(name: str) -> None:
    _done(
        f"{name} deleted",
        services.attempt(f"delete {name}", services.write, channels.delete_channel, name),
    )


def channels_tab() -> None:
    rows = services.need("load the channels", services.cached, channels.list_channels)
    may = services.can("integrations.write")
    if rows:
        st.dataframe(
            pl.DataFrame(rows, infer_schema_length=None).select(
                "name", "kind", "url", "is_enabled", "rate_limit_per_min", "description"
            ),
            hide_index=True,
            key=f"{PAGE}.channels",
        )
        if may:
            names = [r["name"] for r in rows]
            pick, test, toggle, delete = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
            name = pick.selectbox("Channel", names, key=f"{PAGE}.ch_pick")
            enabled = next(r["is_enabled"] for r in rows if r["name"] == name)
            test.button(
                "Send a test",
                key=f"{PAGE}.ch_test",
                on_click=_test_channel,
                args=(name,),
                width="stretch",
            )
            toggle.button(
                "Disable" if enabled else "Enable",
                key=f"{PAGE}.ch_toggle",
                width="stretch",
                on_click=_toggle_channel,
                args=(name, not enabled),
            )
            delete.button(
                "Delete",
                key=f"{PAGE}.ch_delete",
                on_click=_delete_channel,
                args=(name,),
                width="stretch",
            )
    else:
        widgets.empty(
            "No channels yet.",
            "Add one below: a name rules can use (`notify oncall_email`) and an Apprise URL.",
        )
    if not may:
        st.caption("🔒 Your role can see channels but not change them.")
        return
    with st.expander("Add a channel", expanded=not rows):
        a, b = st.columns(2)
        a.text_input("Name", key=f"{PAGE}.ch_name", placeholder="slack_platform")
        b.text_input(
            "Apprise URL",
            key=f"{PAGE}.ch_url",
            type="password",
            placeholder="slack://… mailto://… json://…",
            help="Kept encrypted; shown masked.",
        )
        a.text_input("Description", key=f"{PAGE}.ch_desc")
        b.number_input(
            "Rate limit (messages a minute, 0 = none)", 0, 100_000, 0, key=f"{PAGE}.ch_rate"
        )
        st.button("Add channel", key=f"{PAGE}.ch_add", type="primary", on_click=_add_channel)


# ---------------------------------------------------------------- the delivery log


def log_tab() -> None:
    top = st.columns([2, 2, 1])
    status = top[0].multiselect(
        "Status",
        ["failed", "dead", "pending", "held", "sending", "sent", "suppressed"],
        key=f"{PAGE}.log_status",
        placeholder="any status",
    )
    names = [
        c["name"]
        for c in (services.attempt("list channels", services.cached, channels.list_channels) or [])
    ]
    channel = top[1].multiselect(
        "Channel",
        names,
        key=f"{PAGE}.log_channel",
        placeholder="any channel",
        accept_new_options=True,
    )
    limit = top[2].selectbox("Rows", (100, 500, 1000), key=f"{PAGE}.log_limit")
    page = services.need(
        "load the delivery log",
        services.cached,
        records.list_notifications,
        status=tuple(status),
        channel=tuple(channel),
        limit=limit,
    )
    rows, _ = page
    if not rows:
        widgets.empty(
            "No notifications match.",
            "Messages appear here when rules or routes `notify` a channel.",
        )
        return
    per_day: dict[tuple[str, str], int] = {}
    for r in rows:
        key = ((r["created_at"] or "")[:10], r["status"])
        per_day[key] = per_day.get(key, 0) + 1
    fig = go.Figure()
    for s, color in STATUS_COLORS.items():
        days = sorted(d for d, st_ in per_day if st_ == s)
        if days:
            fig.add_bar(x=days, y=[per_day[(d, s)] for d in days], name=s, marker_color=color)
    fig.update_layout(
        barmode="stack",
        title=f"The {len(rows)} latest notifications by day and outcome",
        height=260,
        margin={"t": 40, "b": 10, "l": 10, "r": 10},
        legend_orientation="h",
    )
    st.plotly_chart(fig, width="stretch", key=f"{PAGE}.log_chart")
    cols = [
        "id",
        "status",
        "channel",
        "target",
        "transition",
        "alert_id",
        "attempts",
        "last_error",
        "next_attempt_at",
        "created_at",
        "sent_at",
    ]
    st.dataframe(
        pl.DataFrame(rows, infer_schema_length=None).select(cols),
        hide_index=True,
        key=f"{PAGE}.log",
    )
    pick, export = st.columns([3, 1], vertical_alignment="bottom")
    with export:
        widgets.export_buttons(rows, "notifications", key=f"{PAGE}.log_export")
    chosen = pick.selectbox(
        "Attempts of",
        [None, *[r["id"] for r in rows]],
        key=f"{PAGE}.log_pick",
        format_func=lambda i: "— pick a notification —" if i is None else f"#{i}",
    )
    if chosen is not None:
        detail = services.attempt(
            "load the notification", services.read, records.get_notification, chosen
        )
        if detail:
            st.markdown(
                f"**{detail['subject'] or '(no subject)'}** → "
                f"{detail['channel']} · {detail['status']}"
            )
            if detail["attempt_log"]:
                st.dataframe(
                    pl.DataFrame(detail["attempt_log"], infer_schema_length=None),
                    hide_index=True,
                    key=f"{PAGE}.attempts",
                )
            else:
                st.caption("Not tried yet.")
            if detail.get("body"):
                with st.expander("Message"):
                    st.text(detail["body"])


# ---------------------------------------------------------------- escalation policies


def _save_policy(existing: str | None, table: list[dict[str, Any]]) -> None:
    ss = st.session_state
    name = existing or (ss.get(f"{PAGE}.pol_name") or "").strip()
    levels = [
        {
            "delay_s": float(r["after (minutes)"]) * 60,
            "targets": [t.strip() for t in str(r["targets"] or "").split(",") if t.strip()],
        }
        for r in table
        if r.get("after (minutes)") is not None
    ]
    desc = ss.get(f"{PAGE}.pol_desc") or ""
    if existing:
        done = services.attempt(
            "save the policy",
            services.write,
            policies.update_policy,
            name,
            levels=levels,
            description=desc,
        )
    else:
        done = services.attempt(
            "create the policy",
            services.write,
            policies.create_policy,
            name,
            levels,
            description=desc,
        )
    _done(f"Policy {name} saved", done)


def policies_tab() -> None:
    rows = services.need("load the escalation policies", services.cached, policies.list_policies)
    for p in rows:
        with st.container(border=True):
            st.markdown(f"**{p['name']}** — {p['description'] or 'no description'}")
            st.markdown(
                "  →  ".join(
                    f"after **{lvl['delay_s'] / 60:g} min**: {', '.join(lvl['targets'])}"
                    for lvl in p["levels"]
                )
            )
    if not rows:
        widgets.empty(
            "No escalation policies.", "A team's policy says who is paged when nobody acknowledges."
        )
    if not services.can("teams.write"):
        st.caption("🔒 Your role cannot change escalation policies.")
        return
    with st.expander("Create or change a policy", expanded=not rows):
        names = [p["name"] for p in rows]
        pick = st.selectbox("Policy", ["(new policy)", *names], key=f"{PAGE}.pol_pick")
        current = next((p for p in rows if p["name"] == pick), None)
        if current is None:
            st.text_input("Name", key=f"{PAGE}.pol_name", placeholder="platform_default")
        st.text_input(
            "Description", value=current["description"] if current else "", key=f"{PAGE}.pol_desc"
        )
        start = [
            {"after (minutes)": lvl["delay_s"] / 60, "targets": ", ".join(lvl["targets"])}
            for lvl in (current or {"levels": []})["levels"]
        ]
        edited = st.data_editor(
            pd_frame(start or [{"after (minutes)": 15.0, "targets": ""}]),
            num_rows="dynamic",
            key=f"{PAGE}.pol_levels",
            column_config={
                "targets": st.column_config.TextColumn(
                    help="channel, team, user email or oncall:SCHEDULE, comma-separated"
                )
            },
        )
        st.button(
            "Save policy",
            key=f"{PAGE}.pol_save",
            type="primary",
            on_click=_save_policy,
            args=(current["name"] if current else None, edited.to_dict("records")),
        )


def pd_frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=["after (minutes)", "targets"])


# ---------------------------------------------------------------- on call


def _shifts(conn: Any, actor: Any, name: str, days: int) -> list[dict[str, Any]]:
    at, end = datetime.now(UTC), datetime.now(UTC) + timedelta(days=days)
    out: list[dict[str, Any]] = []
    while at < end and len(out) < 200:
        now = schedules.who_is_on_call(conn, actor, at, name)[0]["now"]
        out.append(now)
        at = widgets.when(now["end"]) or end
    return out


def _add_schedule() -> None:
    ss = st.session_state
    rotation = {
        "kind": ss.get(f"{PAGE}.sch_kind") or "weekly",
        "users": list(ss.get(f"{PAGE}.sch_users") or []),
        "start": str(ss.get(f"{PAGE}.sch_start")),
        "handoff": f"{ss.get(f'{PAGE}.sch_handoff'):%H:%M}",
    }
    made = services.attempt(
        "create the schedule",
        services.write,
        schedules.create_schedule,
        (ss.get(f"{PAGE}.sch_name") or "").strip(),
        tz=ss.get(f"{PAGE}.sch_tz") or "UTC",
        rotation=rotation,
    )
    _done("Schedule created", made)


def oncall_tab() -> None:
    now = datetime.now(UTC)
    rows = services.need("load who is on call", services.read, schedules.who_is_on_call, now)
    if not rows:
        widgets.empty(
            "No on-call schedules.", "Create a rotation below; policies page it as `oncall:NAME`."
        )
    cols = st.columns(max(1, min(3, len(rows))))
    for i, r in enumerate(rows):
        with cols[i % len(cols)], st.container(border=True):
            st.markdown(f"**{r['schedule']}** ({r['tz']})")
            st.metric(
                "On call now",
                r["now"]["user"],
                f"until {r['now']['end'][:16].replace('T', ' ')}",
                delta_color="off",
            )
            st.caption(
                f"Next: **{r['next']['user']}** from {r['next']['start'][:16].replace('T', ' ')}"
            )
    if rows:
        fig = go.Figure()
        for r in rows:
            for shift in (
                services.attempt("plan the shifts", services.cached, _shifts, r["schedule"], 14)
                or []
            ):
                start, end = widgets.when(shift["start"]), widgets.when(shift["end"])
                fig.add_trace(
                    go.Scatter(
                        x=[start, end],
                        y=[r["schedule"]] * 2,
                        mode="lines+text",
                        text=[shift["user"], ""],
                        textposition="top right",
                        line={"width": 16},
                        showlegend=False,
                        hoverinfo="text",
                        hovertext=f"{shift['user']} ({shift['source']})",
                    )
                )
        fig.add_vline(x=now, line_dash="dot")
        fig.update_layout(
            title="The next 14 days",
            height=140 + 60 * len(rows),
            margin={"t": 40, "b": 10, "l": 10, "r": 10},
        )
        st.plotly_chart(fig, width="stretch", key=f"{PAGE}.calendar")
    if not services.can("teams.write"):
        return
    with st.expander("Create a rotation", expanded=not rows):
        a, b = st.columns(2)
        a.text_input("Name", key=f"{PAGE}.sch_name", placeholder="platform_primary")
        b.selectbox(
            "Time zone",
            ["UTC", "Europe/Berlin", "Europe/London", "America/New_York"],
            key=f"{PAGE}.sch_tz",
            accept_new_options=True,
        )
        st.multiselect(
            "People, in turn", alert_view.people(), key=f"{PAGE}.sch_users", accept_new_options=True
        )
        a.segmented_control(
            "Shift length", ["daily", "weekly"], default="weekly", key=f"{PAGE}.sch_kind"
        )
        b.date_input("First shift", key=f"{PAGE}.sch_start")
        a.time_input(
            "Hand-off", value=datetime.strptime("09:00", "%H:%M").time(), key=f"{PAGE}.sch_handoff"
        )
        st.button("Create rotation", key=f"{PAGE}.sch_add", type="primary", on_click=_add_schedule)


# ---------------------------------------------------------------- notification settings

NONE = "(none)"


def _quiet_inputs(prefix: str, quiet: dict[str, Any]) -> None:
    """Quiet hours as four text fields, so a bad one is named by the error."""
    st.checkbox("Quiet hours", value=bool(quiet), key=f"{prefix}_quiet")
    days, start, end, tz = st.columns(4)
    days.text_input(
        "Days", value=quiet.get("days", "mon-fri"), key=f"{prefix}_days", help="daily, mon-fri …"
    )
    start.text_input("From (HH:MM)", value=quiet.get("start", "22:00"), key=f"{prefix}_start")
    end.text_input("Until (HH:MM)", value=quiet.get("end", "07:00"), key=f"{prefix}_end")
    tz.text_input(
        "Zone", value=quiet.get("tz", ""), key=f"{prefix}_qtz", help="IANA zone; empty: the default"
    )


def _quiet_value(prefix: str) -> dict[str, str] | None:
    ss = st.session_state
    if not ss.get(f"{prefix}_quiet"):
        return None
    out = {k: str(ss.get(f"{prefix}_{k}") or "").strip() for k in ("days", "start", "end")}
    tz = str(ss.get(f"{prefix}_qtz") or "").strip()
    return {**out, "tz": tz} if tz else out


def _picked(value: Any) -> str | None:
    return None if value in (None, "", NONE) else str(value).strip()


def _changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """Only what the form changed: a setting left alone is not checked again (a team may
    still name a channel that was deleted since)."""
    out = {}
    for key, value in wanted.items():
        was = current[key]
        if key == "quiet_hours":
            changed = (value or {}) != (was or {})
        elif isinstance(value, list):
            changed = value != list(was or [])
        else:
            changed = (value or None) != (was or None)
        if changed:
            out[key] = value
    return out


def _save(what: str, save: Any, who: str, current: dict[str, Any], wanted: dict[str, Any]) -> None:
    changes = _changes(current, wanted)
    if not changes:
        st.toast("Nothing changed", icon=":material/info:")
        return
    done = services.attempt(f"save the notification settings of {what}", save, who, **changes)
    _done(f"Notification settings of {what} saved ({', '.join(changes)})", done)


def _save_team_settings(team: str, prefix: str, current: dict[str, Any]) -> None:
    ss = st.session_state
    wanted = {
        "default_channels": list(ss.get(f"{prefix}_defaults") or []),
        "fallback_channel": _picked(ss.get(f"{prefix}_fallback")),
        "escalation_policy": _picked(ss.get(f"{prefix}_policy")),
        "quiet_hours": _quiet_value(prefix),
    }
    _save(f"team {team}", services.save_team_notify_settings, team, current, wanted)


def _save_user_settings(email: str, prefix: str, current: dict[str, Any]) -> None:
    ss = st.session_state
    wanted = {
        "contact_channels": list(ss.get(f"{prefix}_contacts") or []),
        "tz": str(ss.get(f"{prefix}_tz") or "").strip(),
        "quiet_hours": _quiet_value(prefix),
    }
    _save(email, services.save_user_notify_settings, email, current, wanted)


def _choices(current: str | None, names: list[str]) -> list[str]:
    return [NONE, *names, *([current] if current and current not in names else [])]


def _team_settings(channel_names: list[str]) -> None:
    st.subheader("Teams")
    teams = services.attempt("list the teams", services.notify_teams) or []
    if not teams:
        widgets.empty("No teams.", "Create teams on the Admin page first.")
        return
    team = st.selectbox("Team", teams, key=f"{PAGE}.ns_team")
    current = services.attempt(
        f"load the settings of team {team}", services.team_notify_settings, team
    )
    if current is None:
        return
    may = services.can("teams.write")
    prefix = f"{PAGE}.ns_t.{team}"
    policy_names = [
        p["name"]
        for p in (
            services.attempt("list the policies", services.cached, policies.list_policies) or []
        )
    ]
    with st.container(border=True):
        st.multiselect(
            "Default channels",
            sorted({*channel_names, *current["default_channels"]}),
            default=current["default_channels"],
            key=f"{prefix}_defaults",
            help="What a `team:NAME` target (or a team with no notify) reaches.",
            accept_new_options=True,
            disabled=not may,
        )
        a, b = st.columns(2)
        fallback = _choices(current["fallback_channel"], channel_names)
        a.selectbox(
            "Fallback channel",
            fallback,
            index=fallback.index(current["fallback_channel"] or NONE),
            key=f"{prefix}_fallback",
            help="Where a critical alert goes when its message could not be delivered.",
            accept_new_options=True,
            disabled=not may,
        )
        policy = _choices(current["escalation_policy"], policy_names)
        b.selectbox(
            "Escalation policy",
            policy,
            index=policy.index(current["escalation_policy"] or NONE),
            key=f"{prefix}_policy",
            accept_new_options=True,
            disabled=not may,
        )
        _quiet_inputs(prefix, current["quiet_hours"])
        if may:
            st.button(
                "Save team settings",
                key=f"{PAGE}.ns_team_save",
                type="primary",
                on_click=_save_team_settings,
                args=(team, prefix, current),
            )
        else:
            st.caption("🔒 Your role can see a team's notification settings but not change them.")


def _user_settings(channel_names: list[str]) -> None:
    st.subheader("People")
    people = services.attempt("list the people", services.notify_users) or []
    if not people:
        return
    me = services.actor().name
    email = st.selectbox(
        "Person", people, index=people.index(me) if me in people else 0, key=f"{PAGE}.ns_user"
    )
    current = services.attempt(
        f"load the settings of {email}", services.user_notify_settings, email
    )
    if current is None:
        return
    may = email == me or services.can("users.write")
    prefix = f"{PAGE}.ns_u.{email}"
    with st.container(border=True):
        a, b = st.columns([3, 1])
        a.multiselect(
            "Contact channels",
            sorted({*channel_names, *current["contact_channels"]}),
            default=current["contact_channels"],
            key=f"{prefix}_contacts",
            help="What a `user:EMAIL` or `oncall:SCHEDULE` target reaches.",
            accept_new_options=True,
            disabled=not may,
        )
        b.text_input(
            "Time zone",
            value=current["tz"] or "UTC",
            key=f"{prefix}_tz",
            help="IANA zone, e.g. Europe/Berlin",
            disabled=not may,
        )
        _quiet_inputs(prefix, current["quiet_hours"])
        if may:
            st.button(
                "Save my settings" if email == me else "Save person's settings",
                key=f"{PAGE}.ns_user_save",
                type="primary",
                on_click=_save_user_settings,
                args=(email, prefix, current),
            )
        else:
            st.caption("🔒 Changing someone else's settings needs users.write.")


def settings_tab() -> None:
    channel_names = [
        c["name"]
        for c in (services.attempt("list channels", services.cached, channels.list_channels) or [])
    ]
    if services.can("teams.read"):
        _team_settings(channel_names)
    _user_settings(channel_names)


st.title("Notifications")
sections = [
    ("Channels", "integrations.read", channels_tab),
    ("Delivery log", "alerts.read", log_tab),
    ("Escalation policies", "teams.read", policies_tab),
    ("On call", "teams.read", oncall_tab),
    ("Settings", "", settings_tab),  # everyone: at least their own contact settings
]
shown = [(label, draw) for label, need, draw in sections if not need or services.can(need)]
tabs = st.tabs([label for label, _ in shown], key=f"{PAGE}.tab", on_change="rerun")
for tab, (label, draw) in zip(tabs, shown, strict=True):
    if tab.open:
        with tab, services.guarded(f"show {label.lower()}"):
            draw()
