"""My account: profile, password, two-factor login (MFA) and everything Klaxon holds about me."""

from __future__ import annotations

from typing import Any

import orjson
import streamlit as st

from app import services, state
from engine.auth import mfa, privacy, users

PAGE = "account"


def _change_password(user_id: int) -> None:
    ss = st.session_state
    if ss.get(f"{PAGE}.new") != ss.get(f"{PAGE}.again"):
        st.warning("The two new passwords differ.")
        return
    done = services.succeeded(
        "change your password",
        users.set_password,
        services.database(),
        services.actor(),
        user_id,
        ss.get(f"{PAGE}.new") or "",
        current_password=ss.get(f"{PAGE}.current") or "",
    )
    if done:
        st.toast("Password changed: sign in again with it", icon=":material/password:")
    for k in ("current", "new", "again"):
        ss[f"{PAGE}.{k}"] = ""


def _start_mfa() -> None:
    started = services.attempt("start MFA enrolment", services.with_db, mfa.setup)
    if started:
        state.MFA_SETUP.set(started)


def _enable_mfa() -> None:
    codes = services.attempt(
        "turn MFA on", services.with_db, mfa.enable, st.session_state.get(f"{PAGE}.code") or ""
    )
    if codes:
        state.MFA_SETUP.reset()
        st.success(
            "MFA is on. Keep these backup codes somewhere safe; each works once:\n\n"
            + "  \n".join(f"`{c}`" for c in codes)
        )


def _disable_mfa(user_id: int) -> None:
    done = services.succeeded(
        "turn MFA off",
        mfa.disable,
        services.database(),
        services.actor(),
        user_id,
        password=st.session_state.get(f"{PAGE}.mfa_pw") or "",
    )
    if done:
        st.toast("MFA is off", icon=":material/phonelink_erase:")


def _my_data(db: Any, me: Any) -> Any:
    """The export, made when the button is pressed (on another thread: db and me captured)."""
    return lambda: orjson.dumps(privacy.export_user(db, me, me.user_id), option=orjson.OPT_INDENT_2)


st.title("My account")
me = services.actor()
assert me.user_id is not None
profile = services.need("load your profile", services.with_db, users.get_user, me.user_id)
st.markdown(
    f"**{profile['name'] or profile['email']}** · {profile['email']} · role **{profile['role']}**"
    + (f" · teams {', '.join(profile['teams'])}" if profile["teams"] else "")
)
if me.mfa_pending:
    st.warning(
        "Your team or role requires two-factor login: enable it below before anything else.",
        icon=":material/lock:",
    )

left, right = st.columns(2, gap="large")
with left, st.container(border=True):
    st.subheader("Two-factor login", anchor=False)
    status = services.attempt("read your MFA state", services.with_db, mfa.status) or {}
    if status.get("enabled"):
        st.success(
            f"On · {status['backup_codes_left']} backup codes left", icon=":material/verified_user:"
        )
        if not status.get("required"):
            st.text_input("Your password, to turn it off", type="password", key=f"{PAGE}.mfa_pw")
            st.button(
                "Turn MFA off", key=f"{PAGE}.mfa_off", on_click=_disable_mfa, args=(me.user_id,)
            )
    else:
        st.caption("Off. Scan a secret with an authenticator app, then type the code it shows.")
        setup = state.MFA_SETUP.get()
        if not setup:
            st.button("Start", key=f"{PAGE}.mfa_start", on_click=_start_mfa)
        else:
            st.markdown(f"Add this secret to your authenticator app: `{setup['secret']}`")
            st.caption(f"Or open: {setup['uri']}")
        st.text_input(
            "Code from the app (after scanning the secret the Start button shows)",
            key=f"{PAGE}.code",
            max_chars=6,
        )
        st.button("Turn MFA on", key=f"{PAGE}.mfa_on", type="primary", on_click=_enable_mfa)
with right, st.container(border=True):
    st.subheader("Password", anchor=False)
    st.text_input("Current password", type="password", key=f"{PAGE}.current")
    st.text_input("New password", type="password", key=f"{PAGE}.new")
    st.text_input("New password again", type="password", key=f"{PAGE}.again")
    st.button(
        "Change password", key=f"{PAGE}.change", on_click=_change_password, args=(me.user_id,)
    )
    st.caption("Changing it signs you out everywhere.")
with st.container(border=True):
    st.subheader("My data", anchor=False)
    st.download_button(
        "Download everything Klaxon holds about me (JSON)",
        key=f"{PAGE}.export",
        on_click="ignore",
        data=_my_data(services.database(), me),
        file_name="klaxon-my-data.json",
        mime="application/json",
        icon=":material/download:",
    )
