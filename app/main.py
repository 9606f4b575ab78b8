"""Klaxon's web app: `klaxon ui` runs `streamlit run app/main.py`.

Every page is registered here, with its title and the permission that shows it; signed out,
the only page is the login. Pages live in pages/, one a file, and call engine services only.
"""

from __future__ import annotations

import streamlit as st

from app import navigation, remember, services, session, state

# (file, title, icon, url path, permissions of which any shows the page)
SECTIONS: dict[str, list[tuple[str, str, str, str, tuple[str, ...]]]] = {
    "Operate": [
        ("overview.py", "Overview", ":material/monitoring:", "overview", ("alerts.read",)),
        ("triage.py", "Triage", ":material/notifications_active:", "triage", ("alerts.read",)),
        ("incidents.py", "Incidents", ":material/hub:", "incidents", ("incidents.read",)),
        ("silences.py", "Silences", ":material/notifications_off:", "silences", ("alerts.read",)),
    ],
    "Configure": [
        ("rules.py", "Rules", ":material/rule:", "rules", ("rules.read",)),
        (
            "notifications.py",
            "Notifications",
            ":material/campaign:",
            "notifications",
            ("integrations.read", "teams.read"),
        ),
    ],
    "Study": [
        ("analytics.py", "Analytics", ":material/insights:", "analytics", ("analytics.read",)),
    ],
    "Administer": [
        (
            "admin.py",
            "Admin",
            ":material/admin_panel_settings:",
            "admin",
            ("users.read", "audit.read", "integrations.write", "system.config"),
        ),
        ("account.py", "My account", ":material/account_circle:", "account", ()),
    ],
}


def _pages(can: set[str]) -> dict[str, list[st.Page]]:
    out: dict[str, list[st.Page]] = {}
    for section, entries in SECTIONS.items():
        pages = [
            st.Page(navigation.PAGES / file, title=title, icon=icon, url_path=url)
            for file, title, icon, url, needs in entries
            if not needs or can & set(needs)
        ]
        if pages:
            out[section] = pages
    return out


def _sidebar(email: str) -> None:
    with st.sidebar:
        user_id, session_id = state.USER_ID.get(), state.SESSION_ID.get()
        if user_id is not None and session_id:
            remember.keep(user_id, session_id)  # a reload stays signed in
        st.caption(f"Signed in as `{email}`")  # code style: no mailto link
        if st.button("Sign out", key="app.sign_out", icon=":material/logout:"):
            session.sign_out()
            st.rerun()


def _login_everywhere() -> None:
    """Signed out, every page's address shows the login (not "page not found"), so a bookmark
    or a reload opens the page it names once the user has signed in."""
    login = navigation.PAGES / "login.py"
    pages = [st.Page(login, title="Sign in", icon=":material/login:", default=True)]
    pages += [
        st.Page(login, title="Sign in", icon=":material/login:", url_path=url)
        for entries in SECTIONS.values()
        for _file, _title, _icon, url, _needs in entries
    ]
    st.navigation(pages, position="hidden").run()


def main() -> None:
    st.set_page_config(page_title="Klaxon", page_icon="🚨", layout="wide")
    state.init()
    principal = services.attempt("check your session", session.current)
    if principal is None:
        principal = services.attempt("resume your session", session.resume)
    if principal is None:
        remember.forget(always=state.SIGNED_OUT.get())
        _login_everywhere()
        return
    pages = _pages(set(principal.permissions))
    if principal.mfa_pending:
        pages = {"Administer": [p for p in pages["Administer"] if p.url_path == "account"]}
    _sidebar(principal.name)
    page = st.navigation(pages)
    with services.guarded(f"show {page.title}"):  # a bug in a page is a message, not a traceback
        page.run()


if __name__ == "__main__":  # streamlit runs the entry script as __main__
    main()
