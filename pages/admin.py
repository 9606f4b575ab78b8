"""Admin: users, teams, API keys, settings, and the audit log with search and export."""

from __future__ import annotations

import streamlit as st

from app import admin_people, admin_system, services
from engine.auth import teams, users

PAGE = "admin"

st.title("Administration")
sections = [
    ("Users", "users.read", None),
    ("Teams", "teams.read", None),
    ("API keys", "integrations.read", admin_system.keys_panel),
    ("Settings", "users.read", admin_system.settings_panel),
    ("Audit log", "audit.read", admin_system.audit_panel),
]
shown = [(label, draw) for label, need, draw in sections if services.can(need)]
if not shown:
    st.info("Your role has no administration rights. Ask an administrator.", icon=":material/lock:")
    st.stop()
tabs = st.tabs([label for label, _ in shown], key=f"{PAGE}.tab", on_change="rerun")
for tab, (label, draw) in zip(tabs, shown, strict=True):
    if not tab.open:
        continue
    with tab, services.guarded(f"show {label.lower()}"):
        if label in ("Users", "Teams"):
            team_rows = services.cached(teams.list_teams, teams.TeamQuery(limit=1000), uses="db")
            if label == "Users":
                admin_people.users_panel([t["name"] for t in team_rows])
            else:
                everyone = (
                    services.cached(users.list_users, users.UserQuery(limit=1000), uses="db")
                    if services.can("users.read")
                    else []
                )
                emails = sorted(
                    {u["email"] for u in everyone}
                    | {m["email"] for t in team_rows for m in t["members"]}
                )
                admin_people.teams_panel(team_rows, emails)
        elif draw is not None:
            draw()
