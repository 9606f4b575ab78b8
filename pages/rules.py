"""Rules: the rules file with live `check` errors, saving (refused while it does not compile),
version history with diffs, and a backtest over past events."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from app import backtest_panel, services, state, widgets
from dsl.errors import DslErrors
from engine.store import rules as rules_store

PAGE = "rules"
EDITOR = f"{PAGE}.editor"


def _current(conn: Any, actor: Any) -> rules_store.RulesVersion | None:
    actor.require("rules.read")
    return rules_store.current(conn)


def _versions(conn: Any, actor: Any, limit: int = 100) -> list[dict[str, Any]]:
    actor.require("rules.read")
    return [v.to_dict() for v in rules_store.versions(conn, limit)]


def _version(conn: Any, actor: Any, number: int) -> rules_store.RulesVersion | None:
    actor.require("rules.read")
    return rules_store.get(conn, number)


def _save() -> None:
    text = st.session_state.get(EDITOR) or ""
    comment = (st.session_state.get(f"{PAGE}.comment") or "").strip()
    try:
        saved, changed = services.write(rules_store.update_rules, text, comment)
    except DslErrors as err:
        st.error(
            f"Not saved: the rules do not compile ({len(err.errors)} error(s), "
            "shown beside the text)."
        )
        return
    except Exception as err:  # every other failure is a message too
        st.error(f"Could not save the rules: {services.explain(err)}")
        return
    state.RULES_BASE.set(saved.version)
    st.session_state[f"{PAGE}.comment"] = ""
    if changed:
        st.toast(
            f"Saved version {saved.version}; the worker uses it from its next batch",
            icon=":material/save:",
        )
    else:
        st.toast("Nothing changed: the stored rules are already this text", icon=":material/info:")


def _discard(text: str, version: int) -> None:
    st.session_state[EDITOR] = text
    state.RULES_BASE.set(version)


def _editor(current: rules_store.RulesVersion | None) -> None:
    stored = current.text if current else ""
    if state.RULES_BASE.get() is None or EDITOR not in st.session_state:
        state.RULES_BASE.set(current.version if current else 0)
        st.session_state[EDITOR] = stored
    may_write = services.can("rules.write")
    if current and state.RULES_BASE.get() != current.version:
        st.warning(
            f"Someone saved version {current.version} since you started editing; "
            "saving replaces it with your text.",
            icon=":material/sync_problem:",
        )
    text, errors = widgets.rule_editor(EDITOR, stored, disabled=not may_write)
    if not may_write:
        st.caption("🔒 Your role can read the rules but not change them.")
        return
    edited = text != stored
    left, mid, right = st.columns([3, 1, 1], vertical_alignment="bottom")
    left.text_input(
        "What changed (for the history)",
        key=f"{PAGE}.comment",
        placeholder="e.g. quieter disk alerts",
    )
    mid.button(
        "Save",
        key=f"{PAGE}.save",
        type="primary",
        icon=":material/save:",
        on_click=_save,
        disabled=bool(errors) or not edited,
        width="stretch",
        help="Refused while the rules do not compile." if errors else None,
    )
    right.button(
        "Discard edits",
        key=f"{PAGE}.discard",
        on_click=_discard,
        args=(stored, current.version if current else 0),
        disabled=not edited,
        width="stretch",
    )


def _history(current: rules_store.RulesVersion | None) -> None:
    versions = services.need("load the versions", services.cached, _versions)
    if not versions:
        widgets.empty("No versions yet.", "Save the rules once and every later save is kept here.")
        return
    frame = pl.DataFrame(
        {
            "version": [v["version"] for v in versions],
            "saved": [widgets.when(v["created_at"]) for v in versions],
            "by": [v["created_by"] for v in versions],
            "comment": [v["comment"] for v in versions],
            "lines": [v["text"].count("\n") + 1 for v in versions],
        },
        schema_overrides={"saved": pl.Datetime("us", "UTC")},
    )
    st.dataframe(frame, hide_index=True, key=f"{PAGE}.versions", height=220)
    numbers = [v["version"] for v in versions]
    a, b = st.columns(2)
    old = a.selectbox(
        "From version", numbers, index=min(1, len(numbers) - 1), key=f"{PAGE}.diff_from"
    )
    new = b.selectbox("To version", numbers, index=0, key=f"{PAGE}.diff_to")
    texts = {v["version"]: v["text"] for v in versions}
    patch = rules_store.diff(texts[old], texts[new], f"version {old}", f"version {new}")
    if patch:
        added = sum(
            1 for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++")
        )
        removed = sum(
            1 for line in patch.splitlines() if line.startswith("-") and not line.startswith("---")
        )
        st.caption(f"+{added} / −{removed} lines")
        st.code(patch, language="diff")
    else:
        st.caption("The two versions are the same text.")
    widgets.export_buttons(versions, "rule-versions", key=f"{PAGE}.export")


st.title("Rules")
current = services.need("load the rules", services.read, _current)
if current is None:
    widgets.empty(
        "No rules stored yet.",
        "Write your first rule below and save it, or start `klaxon up` once: "
        "it stores the shipped rules.",
    )
else:
    st.caption(
        f"Version {current.version} · saved by {current.created_by} "
        f"{widgets.ago(current.created_at.isoformat())}"
        + (f" · “{current.comment}”" if current.comment else "")
    )
edit, history, backtest = st.tabs(
    ["Editor", "History", "Backtest"], key=f"{PAGE}.tab", on_change="rerun"
)
if edit.open:
    with edit:
        _editor(current)
if history.open:
    with history:
        _history(current)
if backtest.open:
    with backtest:
        from dsl import check_rules

        text = st.session_state.get(EDITOR) or (current.text if current else "")
        backtest_panel.show(PAGE, text, check_rules(text, "rules.klx"))
