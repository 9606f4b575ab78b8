"""Admin panels for the system: API keys, settings (effective configuration, MFA policy, SLA
targets) and the audit log with search, export and chain verification."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import polars as pl
import streamlit as st

from app import services, state, widgets
from engine.analytics import sla
from engine.auth import audit, audit_search, keys, mfa
from engine.auth.principal import ROLES, SCOPES
from engine.config import settings

P = "admin"


# ---------------------------------------------------------------- API keys


def _create_key() -> None:
    ss = st.session_state
    name = (ss.get(f"{P}.k_name") or "").strip()
    if not name:
        st.warning("Name the key after what uses it, e.g. prometheus-prod.")
        return
    rate = int(ss.get(f"{P}.k_rate") or 0) or None
    made = services.attempt(
        "create the key",
        keys.create_key,
        services.database(),
        name=name,
        scopes=list(ss.get(f"{P}.k_scopes") or ["ingest"]),
        hmac=bool(ss.get(f"{P}.k_hmac")),
        rate_limit=rate,
        actor=services.actor(),
    )
    services.changed()
    if made is not None:
        note = f"\n\nHMAC secret: `{made.hmac_secret}`" if made.hmac_secret else ""
        state.NEW_KEY_TOKEN.set(f"`{made.token}`{note}")
        ss[f"{P}.k_name"] = ""


def _revoke(key_id: int) -> None:
    done = services.attempt(
        "revoke the key", keys.revoke_key, services.database(), key_id, services.actor()
    )
    services.changed()
    if done:
        st.toast(f"Key #{key_id} revoked: it stops working now", icon=":material/key_off:")


def keys_panel() -> None:
    token = state.NEW_KEY_TOKEN.get()
    if token:
        st.success(f"The new key (shown this once; copy it now): {token}", icon=":material/key:")
        state.NEW_KEY_TOKEN.reset()
    rows = services.need("load the API keys", lambda: keys.list_keys(services.database()))
    if rows:
        frame = pl.DataFrame(rows, infer_schema_length=None).select(
            "id",
            "name",
            "prefix",
            "scopes",
            "hmac",
            "rate_limit_per_min",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        )
        st.dataframe(frame, hide_index=True, key=f"{P}.keys")
    else:
        widgets.empty(
            "No API keys.", "Create one for each monitoring tool that sends alerts (scope ingest)."
        )
    if not services.can("integrations.write"):
        st.caption("🔒 Your role cannot create or revoke keys.")
        return
    live = [r for r in rows if not r["revoked_at"]]
    if live:
        pick, go = st.columns([3, 1], vertical_alignment="bottom")
        chosen = pick.selectbox(
            "Revoke",
            [r["id"] for r in live],
            key=f"{P}.k_pick",
            format_func=lambda i: next(
                f"#{i} {r['name']} ({r['prefix']}…)" for r in live if r["id"] == i
            ),
        )
        go.button(
            "Revoke key", key=f"{P}.k_revoke", on_click=_revoke, args=(chosen,), width="stretch"
        )
    with st.expander("Create a key", expanded=not rows):
        a, b = st.columns(2)
        a.text_input("Name", key=f"{P}.k_name", placeholder="prometheus-prod")
        b.multiselect("Scopes", SCOPES, default=["ingest"], key=f"{P}.k_scopes")
        a.toggle("Also require an HMAC signature", key=f"{P}.k_hmac")
        b.number_input(
            "Rate limit (requests a minute, 0 = default)", 0, 1_000_000, 0, key=f"{P}.k_rate"
        )
        st.button("Create key", key=f"{P}.k_create", type="primary", on_click=_create_key)


# ---------------------------------------------------------------- settings


def _save_mfa_roles() -> None:
    roles = list(st.session_state.get(f"{P}.mfa_roles") or [])
    done = services.attempt(
        "save the MFA policy", mfa.set_required_roles, services.database(), services.actor(), roles
    )
    services.changed()
    if done is not None:
        st.toast("MFA policy saved", icon=":material/save:")


def _save_sla(table: list[dict[str, Any]]) -> None:
    value = {
        r["severity"]: {
            "ack_s": int(r["acknowledge within (min)"] * 60)
            if r["acknowledge within (min)"]
            else None,
            "resolve_s": int(r["resolve within (min)"] * 60) if r["resolve within (min)"] else None,
        }
        for r in table
    }
    if (
        services.attempt("save the SLA targets", services.write, sla.save_targets, value)
        is not None
    ):
        st.toast("SLA targets saved", icon=":material/save:")


def settings_panel() -> None:
    st.markdown(
        "**Effective configuration** (from `KLAXON_*` environment variables; secrets masked)"
    )
    config = settings().masked()
    st.dataframe(
        pl.DataFrame({"setting": list(config), "value": list(config.values())}),
        hide_index=True,
        key=f"{P}.config",
    )
    st.caption(
        "Change these in the environment of the api, worker and ui processes, then restart them."
    )
    may_config = services.can("system.config")
    current = (
        services.attempt(
            "read the MFA policy", services.read, lambda conn, _actor: mfa.required_roles(conn)
        )
        or []
    )
    st.multiselect(
        "Roles that must use MFA",
        ROLES,
        default=current,
        key=f"{P}.mfa_roles",
        disabled=not may_config,
    )
    st.button(
        "Save MFA policy", key=f"{P}.mfa_save", on_click=_save_mfa_roles, disabled=not may_config
    )
    targets = services.attempt(
        "read the SLA targets", services.read, lambda conn, _actor: sla.targets(conn)
    )
    if targets:
        st.markdown("**SLA targets** (analytics counts breaches against them)")
        frame = pl.DataFrame(
            {
                "severity": list(targets),
                "acknowledge within (min)": [
                    (t["ack_s"] or 0) / 60 or None for t in targets.values()
                ],
                "resolve within (min)": [
                    (t["resolve_s"] or 0) / 60 or None for t in targets.values()
                ],
            }
        )
        may_sla = services.can("reports.write")
        edited = st.data_editor(
            frame.to_pandas(),
            hide_index=True,
            key=f"{P}.sla",
            disabled=["severity"] if may_sla else True,
        )
        st.button(
            "Save SLA targets",
            key=f"{P}.sla_save",
            on_click=_save_sla,
            args=(edited.to_dict("records"),),
            disabled=not may_sla,
        )


# ---------------------------------------------------------------- audit log


def _audit_query(limit: int = 500) -> audit_search.AuditQuery:
    ss = st.session_state
    since, until = ss.get(f"{P}.a_since"), ss.get(f"{P}.a_until")
    return audit_search.AuditQuery(
        q=(ss.get(f"{P}.a_q") or "").strip() or None,
        actor=tuple(ss.get(f"{P}.a_actor") or ()),
        action=tuple(ss.get(f"{P}.a_action") or ()),
        since=datetime.combine(since, time(), UTC) if since else None,
        until=datetime.combine(until, time(), UTC) + timedelta(days=1) if until else None,
        limit=limit,
    )


def _exporter(fmt: str) -> Any:
    """The export of every matching entry, made when the button is pressed (on another thread,
    so everything it needs is captured now)."""
    db, actor, query = services.database(), services.actor(), _audit_query()
    return lambda: b"".join(audit_search.export(db, actor, fmt, query))


def audit_panel() -> None:
    top = st.columns([3, 2, 2])
    top[0].text_input(
        "Search", key=f"{P}.a_q", placeholder="actor, action, resource id or changed value"
    )
    top[1].multiselect(
        "Action",
        ["auth.*", "alert.*", "rules.*", "silence.*", "user.*", "team.*", "apikey.*", "channel.*"],
        key=f"{P}.a_action",
        accept_new_options=True,
        placeholder="any action",
    )
    top[2].multiselect(
        "Actor",
        [],
        key=f"{P}.a_actor",
        accept_new_options=True,
        placeholder="anyone (type an email)",
    )
    when_a, when_b, _ = st.columns([1, 1, 2])
    when_a.date_input("From", value=None, key=f"{P}.a_since")
    when_b.date_input("To", value=None, key=f"{P}.a_until")
    query = _audit_query()
    rows = services.need(
        "search the audit log", services.cached, audit_search.search_audit, query, uses="db"
    )
    if not rows:
        widgets.empty("No audit entries match.", "Widen the dates or clear the search.")
        return
    frame = pl.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "at": [widgets.when(r["at"]) for r in rows],
            "actor": [r["actor"] for r in rows],
            "action": [r["action"] for r in rows],
            "resource": [f"{r['resource']} {r['resource_id'] or ''}".strip() for r in rows],
            "ip": [r["ip"] or "" for r in rows],
            "change": [_change(r) for r in rows],
        },
        schema_overrides={"at": pl.Datetime("us", "UTC")},
    )
    st.caption(f"The {len(rows)} newest matching entries")
    st.dataframe(
        frame,
        hide_index=True,
        key=f"{P}.audit",
        height=360,
        column_config={"change": st.column_config.TextColumn(width="large")},
    )
    cols = st.columns([1, 1, 2])
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    for col, fmt, mime in ((cols[0], "csv", "text/csv"), (cols[1], "json", "application/json")):
        col.download_button(
            f"Export all matching as {fmt.upper()}",
            data=_exporter(fmt),
            file_name=f"klaxon-audit-{stamp}.{fmt}",
            mime=mime,
            key=f"{P}.a_export_{fmt}",
            icon=":material/download:",
            on_click="ignore",
        )
    with cols[2]:
        if st.button("Verify the hash chain", key=f"{P}.a_verify", icon=":material/verified:"):
            with st.spinner("Checking every entry…"):
                result = services.attempt(
                    "verify the audit chain", audit.verify, services.database()
                )
            if result is not None and result.ok:
                st.success(f"The chain holds: {result.checked:,} entries checked.")
            elif result is not None:
                st.error(f"The chain breaks at entry #{result.broken_id}: {result.reason}")


def _change(r: dict[str, Any]) -> str:
    before, after = r.get("before") or {}, r.get("after") or {}
    keys_ = sorted(set(before) | set(after))
    parts = [
        f"{k}: {before.get(k)!r} → {after.get(k)!r}" for k in keys_ if before.get(k) != after.get(k)
    ]
    return "; ".join(parts)[:300]
