"""Sign in with the accounts the API uses; the authenticator code when the account has MFA."""

from __future__ import annotations

import streamlit as st

from app import session, state
from engine.auth.errors import AccountLockedError, LoginError, MfaInvalidError, MfaRequiredError

left, middle, right = st.columns([1, 1.3, 1])
with middle:
    st.title("🚨 Klaxon")
    st.caption("Alerts in, the right people paged, noise out.")
    notice = state.take_notice()
    if notice:
        st.info(notice)
    asks_code = state.MFA_PENDING.get()
    with st.form("login.form", border=True):
        email = st.text_input("Email", key="login.email", autocomplete="username")
        password = st.text_input(
            "Password", type="password", key="login.password", autocomplete="current-password"
        )
        code = ""
        if asks_code:
            code = st.text_input(
                "Authenticator code",
                key="login.totp",
                help="The 6 digits your authenticator app shows, or one of your backup codes.",
            )
        submitted = st.form_submit_button("Sign in", type="primary", width="stretch")
    if submitted:
        if not email.strip() or not password:
            st.error("Enter your email and your password.")
        else:
            try:
                session.sign_in(email, password, code or None)
            except MfaRequiredError:
                state.MFA_PENDING.set(True)
                st.rerun()
            except (LoginError, MfaInvalidError) as err:
                st.error(f"{str(err).capitalize()}.")
            except AccountLockedError as err:
                st.error(f"{err} Try again in {max(1, err.retry_after // 60)} minute(s).")
            except Exception as err:  # a broken store is a message, not a traceback
                from app.services import explain

                st.error(f"Could not sign in: {explain(err)}")
            else:
                st.rerun()
    st.caption(
        "No account yet? An administrator creates one (`klaxon user add`). "
        "With `klaxon up --demo`, the demo accounts are printed in the terminal."
    )
