"""Admin panels for people: users (create, role, teams, active, unlock, password, MFA reset) and
teams (members, MFA requirement)."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from app import services, widgets
from engine.auth import mfa, teams, users
from engine.auth.principal import ROLES

P = "admin"


def _db_call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A service taking (db, ...) with the actor as a keyword; cached reads dropped after."""
    result = services.attempt(what, fn, services.database(), *args, **kwargs)
    services.changed()
    return result


# ---------------------------------------------------------------- users


def _create_user() -> None:
    ss = st.session_state
    made = _db_call(
        "create the user",
        users.create_user,
        email=(ss.get(f"{P}.u_email") or "").strip(),
        role=ss.get(f"{P}.u_role") or "viewer",
        password=ss.get(f"{P}.u_password") or "",
        name=ss.get(f"{P}.u_name") or "",
        teams=list(ss.get(f"{P}.u_teams") or []),
        actor=services.actor(),
    )
    if made:
        st.toast(f"User {made['email']} created", icon=":material/person_add:")
        for k in ("u_email", "u_name", "u_password"):
            ss[f"{P}.u_{k[2:]}"] = ""


def _update_user(user_id: int) -> None:
    ss = st.session_state
    done = _db_call(
        "change the user",
        users.update_user,
        services.actor(),
        user_id,
        role=ss.get(f"{P}.e_role"),
        is_active=ss.get(f"{P}.e_active"),
        teams=list(ss.get(f"{P}.e_teams") or []),
    )
    if done:
        st.toast(f"{done['email']} saved", icon=":material/save:")


def _unlock(user_id: int) -> None:
    if _db_call("unlock the user", users.unlock_user, services.actor(), user_id):
        st.toast("Unlocked", icon=":material/lock_open:")


def _reset_mfa(user_id: int) -> None:
    _db_call("reset MFA", mfa.disable, services.actor(), user_id)
    st.toast("MFA reset: they enrol again at their next sign-in", icon=":material/phonelink_lock:")


def _set_password(user_id: int) -> None:
    new = st.session_state.get(f"{P}.e_password") or ""
    _db_call("set the password", users.set_password, services.actor(), user_id, new)
    st.session_state[f"{P}.e_password"] = ""


def users_panel(team_names: list[str]) -> None:
    top = st.columns([3, 2, 1])
    q = top[0].text_input("Search", key=f"{P}.u_q", placeholder="email or name")
    roles = top[1].multiselect("Role", ROLES, key=f"{P}.u_roles", placeholder="any role")
    active = top[2].selectbox("State", ["active", "inactive", "all"], key=f"{P}.u_state")
    query = users.UserQuery(
        q=q or None,
        role=tuple(roles),
        active=None if active == "all" else active == "active",
        limit=1000,
    )
    rows = services.need("load the users", services.cached, users.list_users, query, uses="db")
    if not rows:
        widgets.empty("No users match.", "Clear the search, or create a user below.")
    else:
        frame = pl.DataFrame(rows, infer_schema_length=None).select(
            "id",
            "email",
            "name",
            "role",
            "teams",
            "is_active",
            "mfa_enabled",
            "is_locked",
            "last_login_at",
        )
        st.dataframe(frame, hide_index=True, key=f"{P}.users")
        widgets.export_buttons(rows, "users", key=f"{P}.u_export")
    if not services.can("users.write"):
        st.caption("🔒 Your role can see users but not change them.")
        return
    if rows:
        with st.expander("Change a user"):
            ids = [r["id"] for r in rows]
            pick = st.selectbox(
                "User",
                ids,
                key=f"{P}.e_pick",
                format_func=lambda i: next(r["email"] for r in rows if r["id"] == i),
            )
            user = next(r for r in rows if r["id"] == pick)
            a, b = st.columns(2)
            a.selectbox("Role", ROLES, index=ROLES.index(user["role"]), key=f"{P}.e_role")
            b.multiselect(
                "Teams",
                team_names,
                default=[t for t in user["teams"] if t in team_names],
                key=f"{P}.e_teams",
            )
            a.toggle(
                "Active (inactive users cannot sign in)",
                value=user["is_active"],
                key=f"{P}.e_active",
            )
            b.button("Save", key=f"{P}.e_save", type="primary", on_click=_update_user, args=(pick,))
            c, d, e = st.columns(3, vertical_alignment="bottom")
            c.button(
                "Unlock",
                key=f"{P}.e_unlock",
                on_click=_unlock,
                args=(pick,),
                disabled=not user["is_locked"],
            )
            d.button(
                "Reset MFA",
                key=f"{P}.e_mfa",
                on_click=_reset_mfa,
                args=(pick,),
                disabled=not user["mfa_enabled"],
            )
            e.text_input("New password", type="password", key=f"{P}.e_password")
            e.button("Set password", key=f"{P}.e_setpw", on_click=_set_password, args=(pick,))
    with st.expander("Create a user"):
        a, b = st.columns(2)
        a.text_input("Email", key=f"{P}.u_email")
        b.text_input("Name", key=f"{P}.u_name")
        a.selectbox("Role", ROLES, index=ROLES.index("operator"), key=f"{P}.u_role")
        b.multiselect("Teams", team_names, key=f"{P}.u_teams")
        a.text_input(
            "Password",
            type="password",
            key=f"{P}.u_password",
            help="They can change it under My account.",
        )
        st.button("Create user", key=f"{P}.u_create", type="primary", on_click=_create_user)


# ---------------------------------------------------------------- teams


def _create_team() -> None:
    ss = st.session_state
    made = _db_call(
        "create the team",
        teams.create_team,
        services.actor(),
        name=(ss.get(f"{P}.t_name") or "").strip(),
        require_mfa=bool(ss.get(f"{P}.t_mfa")),
        members=list(ss.get(f"{P}.t_members") or []),
    )
    if made:
        st.toast(f"Team {made['name']} created", icon=":material/group_add:")


def _save_team(team: dict[str, Any]) -> None:
    ss = st.session_state
    done = _db_call(
        "save the team",
        teams.update_team,
        services.actor(),
        team["id"],
        require_mfa=bool(ss.get(f"{P}.tm_mfa")),
        members=list(ss.get(f"{P}.tm_members") or []),
    )
    if done:
        st.toast(f"Team {team['name']} saved", icon=":material/save:")


def _delete_team(team_id: int) -> None:
    _db_call("delete the team", teams.delete_team, services.actor(), team_id)


def teams_panel(rows: list[dict[str, Any]], emails: list[str]) -> None:
    if rows:
        frame = pl.DataFrame(
            {
                "team": [t["name"] for t in rows],
                "members": [", ".join(m["email"] for m in t["members"]) for t in rows],
                "people": [len(t["members"]) for t in rows],
                "requires MFA": [t["require_mfa"] for t in rows],
            }
        )
        st.dataframe(frame, hide_index=True, key=f"{P}.teams")
    else:
        widgets.empty(
            "No teams yet.", "Create one below; rules and routes assign alerts to teams by name."
        )
    if not services.can("teams.write"):
        st.caption("🔒 Your role can see teams but not change them.")
        return
    if rows:
        with st.expander("Change a team"):
            names = [t["name"] for t in rows]
            name = st.selectbox("Team", names, key=f"{P}.tm_pick")
            team = next(t for t in rows if t["name"] == name)
            st.multiselect(
                "Members",
                emails,
                default=[m["email"] for m in team["members"] if m["email"] in emails],
                key=f"{P}.tm_members",
            )
            st.toggle("Members must use MFA", value=team["require_mfa"], key=f"{P}.tm_mfa")
            left, right = st.columns(2)
            left.button(
                "Save team", key=f"{P}.tm_save", type="primary", on_click=_save_team, args=(team,)
            )
            right.button(
                "Delete team", key=f"{P}.tm_delete", on_click=_delete_team, args=(team["id"],)
            )
    with st.expander("Create a team"):
        st.text_input("Name", key=f"{P}.t_name", placeholder="payments")
        st.multiselect("Members", emails, key=f"{P}.t_members")
        st.toggle("Members must use MFA", key=f"{P}.t_mfa")
        st.button("Create team", key=f"{P}.t_create", type="primary", on_click=_create_team)
