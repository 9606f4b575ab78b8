"""Triage: the alert list with filters and saved views, bulk actions, and one alert in full."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import streamlit as st

from app import alert_view, services, state, widgets
from engine.store.alerts import (
    RESOLUTIONS,
    SORTS,
    AlertQuery,
    act_many,
    count_alerts,
    list_alerts,
)

PAGE = "triage"
VIEW_WIDGETS = [
    f"{PAGE}.{n}" for n in ("status", "severity", "q", "team", "service", "source", "sort", "desc")
]
LIMITS = (100, 250, 500, 1000)


def _facets(conn: Any, actor: Any) -> dict[str, list[str]]:
    recent, _ = list_alerts(conn, actor, AlertQuery(), limit=1000)
    return widgets.facets_of(recent)


# ---------------------------------------------------------------- saved views


def _save_view() -> None:
    name = (st.session_state.get(f"{PAGE}.view_name") or "").strip()
    if not name:
        st.warning("Give the view a name first.")
        return
    views = dict(state.SAVED_VIEWS.get())
    views[name] = state.remember_widgets(VIEW_WIDGETS)
    state.SAVED_VIEWS.set(views)
    st.toast(f"Saved the view “{name}”", icon=":material/bookmark_added:")


def _apply_view() -> None:
    name = st.session_state.get(f"{PAGE}.view")
    if name and name in state.SAVED_VIEWS.get():
        state.restore_widgets(state.SAVED_VIEWS.get()[name])


def _delete_view() -> None:
    name = st.session_state.get(f"{PAGE}.view")
    views = dict(state.SAVED_VIEWS.get())
    if name in views:
        del views[name]
        state.SAVED_VIEWS.set(views)
        st.session_state[f"{PAGE}.view"] = None


def _views() -> None:
    with st.popover("Saved views", icon=":material/bookmarks:"):
        views = state.SAVED_VIEWS.get()
        if views:
            st.selectbox(
                "View", list(views), key=f"{PAGE}.view", index=None, placeholder="pick a view"
            )
            left, right = st.columns(2)
            left.button("Apply", key=f"{PAGE}.apply_view", on_click=_apply_view, type="primary")
            right.button("Delete", key=f"{PAGE}.delete_view", on_click=_delete_view)
        else:
            st.caption("No saved views yet: set the filters, name them, save.")
        st.text_input(
            "Name the current filters",
            key=f"{PAGE}.view_name",
            placeholder="e.g. payments critical",
        )
        st.button(
            "Save view",
            key=f"{PAGE}.save_view",
            on_click=_save_view,
            icon=":material/bookmark_add:",
        )
        st.caption("The page address holds the filters too: bookmark or share it.")


# ---------------------------------------------------------------- bulk actions


def _bulk(ids: list[int], action: str) -> None:
    kwargs: dict[str, Any] = {}
    if action == "resolve":
        kwargs["reason"] = st.session_state.get(f"{PAGE}.bulk_reason") or "fixed"
    if action == "assign":
        kwargs["assignee"] = (st.session_state.get(f"{PAGE}.bulk_assignee") or "").strip()
        if not kwargs["assignee"]:
            st.warning("Pick or type who to assign the alerts to.")
            return
    results = services.attempt(
        f"{action} {len(ids)} alerts", services.write, act_many, ids, action, **kwargs
    )
    if results is None:
        return
    done = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    st.toast(
        f"{alert_view.ACTION_WORDS[action]} {len(done)} of {len(ids)} alerts",
        icon=":material/done_all:",
    )
    if failed:
        st.warning("Not changed: " + "; ".join(f"#{r['id']}: {r['error']}" for r in failed[:10]))


def _bulk_bar(ids: list[int]) -> None:
    if not ids:
        st.caption("Select rows (the boxes on the left) to act on several alerts at once.")
        return
    if not services.can("alerts.write"):
        st.caption(f"{len(ids)} selected · 🔒 your role cannot change alerts.")
        return
    cols = st.columns([1.2, 1.2, 1.2, 1.2, 3])
    cols[0].markdown(f"**{len(ids)} selected**")
    cols[1].button(
        "Acknowledge",
        key=f"{PAGE}.bulk_ack",
        on_click=_bulk,
        args=(ids, "acknowledge"),
        type="primary",
        icon=":material/done_all:",
        width="stretch",
    )
    with cols[2].popover("Resolve", icon=":material/task_alt:", width="stretch"):
        st.selectbox("Reason", RESOLUTIONS, key=f"{PAGE}.bulk_reason")
        st.button(
            "Resolve all",
            key=f"{PAGE}.bulk_resolve",
            on_click=_bulk,
            args=(ids, "resolve"),
            type="primary",
        )
    with cols[3].popover("Assign", icon=":material/group_add:", width="stretch"):
        st.selectbox(
            "Assignee",
            alert_view.people(),
            key=f"{PAGE}.bulk_assignee",
            accept_new_options=True,
            index=None,
            placeholder="pick or type an email",
        )
        st.button(
            "Assign all",
            key=f"{PAGE}.bulk_assign",
            on_click=_bulk,
            args=(ids, "assign"),
            type="primary",
        )


# ---------------------------------------------------------------- the page


def _open_picker(rows: list[dict[str, Any]], picked: list[int]) -> int | None:
    """Which alert is open: a new single table pick opens it; the picker can open any listed."""
    if tuple(picked) != state.LAST_PICK.get():
        state.LAST_PICK.set(tuple(picked))
        if len(picked) == 1:
            state.OPEN_ALERT.set(picked[0])
    titles = {r["id"]: r["title"] or r["rule"] for r in rows}
    current = state.OPEN_ALERT.get()
    options: list[int | None] = [None, *titles]
    if current is not None and current not in titles:
        options.insert(1, current)
    st.session_state[f"{PAGE}.open"] = current
    st.selectbox(
        "Open an alert",
        options,
        key=f"{PAGE}.open",
        format_func=lambda i: (
            "— pick an alert to see it in full —"
            if i is None
            else f"#{i} · {titles.get(i, 'alert')}"
        ),
        on_change=lambda: state.OPEN_ALERT.set(st.session_state.get(f"{PAGE}.open")),
        placeholder="pick an alert to see it in full",
    )
    return state.OPEN_ALERT.get()


st.title("Triage")
facets = services.attempt("load the filter choices", services.cached, _facets) or {}
query = widgets.alert_filters(PAGE, facets)
bar = st.columns([2, 1, 1, 1, 1])
sort = bar[0].selectbox("Sort by", list(SORTS), key=f"{PAGE}.sort", label_visibility="collapsed")
descending = bar[1].toggle(
    "Newest first", value=f"{PAGE}.desc" not in st.session_state, key=f"{PAGE}.desc"
)
limit = bar[2].selectbox(
    "Rows",
    LIMITS,
    key=f"{PAGE}.limit",
    label_visibility="collapsed",
    format_func=lambda n: f"{n} rows",
)
with bar[3]:
    _views()
query = replace(query, sort=sort, descending=descending)
page = services.attempt("load the alerts", services.cached, list_alerts, query, limit=limit)
total = services.attempt("count the alerts", services.cached, count_alerts, query)
if page is None:
    st.stop()
rows, _next = page
with bar[4]:
    widgets.export_buttons(rows, "alerts", key=f"{PAGE}.export")
if not rows:
    widgets.empty(
        "No alerts match these filters.",
        "Clear a filter, pick another status (resolved alerts are hidden by default), or send an "
        "alert: `curl -X POST localhost:8080/api/v1/alerts` with an API key.",
    )
    st.stop()
more = total is not None and total > len(rows)
st.caption(
    f"Showing {len(rows):,} of {total if total is not None else len(rows):,} alerts"
    + (" — narrow the filters or show more rows" if more else "")
)
picked = widgets.alert_table(rows, key=f"{PAGE}.table", height=380)
_bulk_bar(picked)
st.divider()
alert_id = _open_picker(rows, picked)
if alert_id is not None:
    alert_view.show(alert_id, PAGE)
