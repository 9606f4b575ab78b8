"""One alert in full: its fields and labels, every action, the timeline, notes, notifications
sent, the alerts of its incident and the record as JSON. Triage and Incidents show it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import navigation, services, state, widgets
from engine.auth.teams import list_teams
from engine.store.alerts import RESOLUTIONS, act, get_alert, history, notifications_of
from engine.store.incidents import get_incident

ACTION_WORDS = {
    "acknowledge": "Acknowledged",
    "investigate": "Marked as investigating",
    "resolve": "Resolved",
    "assign": "Assigned",
    "escalate": "Escalated",
    "note": "Added a note to",
}


def run_action(alert_id: int, action: str, **kwargs: Any) -> None:
    """A button callback: one action on one alert, then a toast (or the reason it failed)."""
    done = services.attempt(
        f"{action} alert #{alert_id}", services.write, act, alert_id, action, **kwargs
    )
    if done is not None:
        st.toast(f"{ACTION_WORDS[action]} alert #{alert_id}", icon=":material/check:")


def _resolve(alert_id: int, page: str) -> None:
    reason = st.session_state.get(f"{page}.resolve_reason") or "fixed"
    run_action(
        alert_id,
        "resolve",
        reason=reason,
        note=st.session_state.get(f"{page}.resolve_note") or None,
    )


def _assign(alert_id: int, page: str) -> None:
    who = (st.session_state.get(f"{page}.assignee") or "").strip()
    if not who:
        st.warning("Pick or type who to assign the alert to.")
        return
    run_action(alert_id, "assign", assignee=who)


def _note(alert_id: int, page: str) -> None:
    text = (st.session_state.get(f"{page}.note") or "").strip()
    if not text:
        st.warning("Write the note first.")
        return
    run_action(alert_id, "note", note=text)
    st.session_state[f"{page}.note"] = ""


def _silence_similar(alert: dict[str, Any]) -> None:
    from engine.store.silences import similar_matcher

    state.SILENCE_DRAFT.set(similar_matcher(alert))


def people() -> list[str]:
    """Everyone in a team, as assignee choices (needs teams.read; else type a name)."""
    if not services.can("teams.read"):
        return []
    teams = services.attempt("list the teams", services.with_db, list_teams) or []
    return sorted({m["email"] for t in teams for m in t["members"]})


def actions(alert: dict[str, Any], page: str) -> None:
    """The buttons a user may press on this alert; the rest are not shown."""
    alert_id, status = alert["id"], alert["status"]
    if not services.can("alerts.write"):
        st.caption("🔒 Your role can read alerts but not act on them.")
        return
    is_open = status != "resolved"
    cols = st.columns(6)
    cols[0].button(
        "Acknowledge",
        key=f"{page}.ack",
        type="primary",
        icon=":material/done:",
        disabled=status not in ("active", "suppressed"),
        on_click=run_action,
        args=(alert_id, "acknowledge"),
        width="stretch",
    )
    cols[1].button(
        "Investigate",
        key=f"{page}.investigate",
        icon=":material/search:",
        disabled=not is_open or status == "investigating",
        on_click=run_action,
        args=(alert_id, "investigate"),
        width="stretch",
    )
    with cols[2].popover(
        "Resolve", icon=":material/task_alt:", disabled=not is_open, width="stretch"
    ):
        st.selectbox("Reason", RESOLUTIONS, key=f"{page}.resolve_reason")
        st.text_input("Note (optional)", key=f"{page}.resolve_note")
        st.button(
            "Resolve alert",
            key=f"{page}.resolve",
            on_click=_resolve,
            args=(alert_id, page),
            type="primary",
        )
    with cols[3].popover(
        "Assign", icon=":material/person_add:", disabled=not is_open, width="stretch"
    ):
        st.selectbox(
            "Assignee",
            people(),
            key=f"{page}.assignee",
            accept_new_options=True,
            index=None,
            placeholder="pick or type an email",
        )
        st.button(
            "Assign", key=f"{page}.assign", on_click=_assign, args=(alert_id, page), type="primary"
        )
    cols[4].button(
        "Escalate",
        key=f"{page}.escalate",
        icon=":material/trending_up:",
        disabled=not is_open,
        on_click=run_action,
        args=(alert_id, "escalate"),
        width="stretch",
    )
    if services.can("silences.write") and cols[5].button(
        "Silence similar",
        key=f"{page}.silence",
        icon=":material/notifications_off:",
        width="stretch",
    ):
        _silence_similar(alert)
        navigation.go("silences")


def _timeline(entries: list[dict[str, Any]]) -> None:
    if not entries:
        widgets.empty("No history yet.", "Changes and notes appear here as they happen.")
        return
    for h in reversed(entries):
        change = (
            f"{h['from_status']} → {h['to_status']}" if h["from_status"] != h["to_status"] else ""
        )
        line = f"`{h['at'][:19].replace('T', ' ')}` **{h['action']}** by {h['actor']} {change}"
        st.markdown(line)
        if h.get("note"):
            st.caption(f"📝 {h['note']}")


def show(alert_id: int, page: str) -> None:
    """The alert's detail; every failure becomes a message."""
    alert = services.attempt(f"load alert #{alert_id}", services.read, get_alert, alert_id)
    if alert is None:
        return
    icon = widgets.SEVERITY_ICON.get(alert["severity"], "")
    st.subheader(f"{icon} #{alert['id']} {alert['title'] or alert['rule']}", anchor=False)
    st.caption(
        f"{widgets.STATUS_ICON.get(alert['status'], '')} **{alert['status']}** · "
        f"{alert['severity']} · rule `{alert['rule']}` · team {alert['team'] or '—'} · "
        f"service {alert['service'] or '—'} · "
        f"created {widgets.ago(alert['created_at'])} · seen {alert['occurrences']}×"
        + (f" · assigned to {alert['assignee']}" if alert["assignee"] else "")
        + (f" · 🔇 muted by {', '.join(alert['muted_by'])}" if alert["muted_by"] else "")
    )
    actions(alert, page)
    if alert["description"]:
        st.markdown(alert["description"])
    tabs = st.tabs(["Labels", "Timeline", "Notes", "Notifications", "Related", "Raw"])
    with tabs[0]:
        labels = {**(alert.get("event_labels") or {}), **(alert.get("labels") or {})}
        fields = {
            k: alert[k]
            for k in ("source", "environment", "host", "value", "fingerprint")
            if alert.get(k) not in (None, "")
        }
        key = alert.get("key") or {}
        rows = [{"name": k, "value": str(v), "kind": "key"} for k, v in key.items()]
        # a field that is also part of the key is shown once, as the key
        rows += [
            {"name": k, "value": str(v), "kind": "field"}
            for k, v in fields.items()
            if str(key.get(k, "")) != str(v)
        ]
        rows += [{"name": k, "value": str(v), "kind": "label"} for k, v in sorted(labels.items())]
        st.dataframe(
            pd.DataFrame(rows, columns=["name", "value", "kind"]),
            hide_index=True,
            key=f"{page}.labels",
        )
    entries = services.attempt("load the history", services.read, history, alert_id) or []
    with tabs[1]:
        _timeline(entries)
    with tabs[2]:
        notes = [h for h in entries if h.get("note")]
        for h in notes:
            st.markdown(f"**{h['actor']}** · {widgets.ago(h['at'])}")
            st.caption(h["note"])
        if not notes:
            st.caption("No notes yet.")
        if services.can("alerts.write"):
            st.text_area(
                "Add a note",
                key=f"{page}.note",
                height=90,
                placeholder="What you found, what you tried…",
            )
            st.button("Add note", key=f"{page}.add_note", on_click=_note, args=(alert_id, page))
    with tabs[3]:
        sent = (
            services.attempt("load the notifications", services.read, notifications_of, alert_id)
            or []
        )
        if sent:
            st.dataframe(pd.DataFrame(sent), hide_index=True, key=f"{page}.notifications")
        else:
            widgets.empty(
                "No notifications for this alert.",
                "Routes and rules with `notify` send them; see Notifications.",
            )
    with tabs[4]:
        _related(alert, page)
    with tabs[5]:
        st.json(alert, expanded=1)


def _related(alert: dict[str, Any], page: str) -> None:
    if not alert["incident_id"]:
        widgets.empty(
            "This alert is not part of an incident.",
            "A `correlate` block in the rules groups related alerts.",
        )
        return
    if not services.can("incidents.read"):
        st.caption("🔒 Your role cannot see incidents.")
        return
    incident = services.attempt(
        "load the incident", services.read, get_incident, alert["incident_id"]
    )
    if incident is None:
        return
    st.markdown(
        f"Incident **#{incident['id']} {incident['title']}** · {incident['status']} · "
        f"{incident['alert_count']} alerts"
    )
    others = [a for a in incident["alerts"] if a["id"] != alert["id"]]
    if others:
        widgets.alert_table(others, key=f"{page}.related", selectable=False)
    else:
        st.caption("No other alerts in this incident yet.")
