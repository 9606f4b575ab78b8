"""Shared pieces of the pages: the alert filter bar and table, export buttons, the rule editor.

Pages draw these instead of copying them (STYLE.md §9), so every alert list filters, looks and
exports the same way, and every rule text box shows the same live errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import polars as pl
import streamlit as st

from dsl import check_rules
from dsl.errors import DslError
from engine.store.alerts import AlertQuery

SEVERITIES = ("critical", "high", "medium", "low", "info")
SEVERITY_ICON = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "info": "⚪"}
STATUSES = ("open", "active", "acknowledged", "investigating", "suppressed", "resolved")
STATUS_ICON = {
    "active": "🔥",
    "acknowledged": "👀",
    "investigating": "🔎",
    "suppressed": "🔇",
    "resolved": "✅",
}
SEVERITY_COLORS = {
    "critical": "#B91C1C",
    "high": "#EA580C",
    "medium": "#CA8A04",
    "low": "#2563EB",
    "info": "#9CA3AF",
}
EXPORT_FORMATS = {
    "CSV": ("csv", "text/csv"),
    "JSON": ("json", "application/json"),
    "Parquet": ("parquet", "application/vnd.apache.parquet"),
}


def empty(message: str, next_step: str) -> None:
    """An empty state that says what to do next."""
    st.info(f"**{message}** {next_step}", icon=":material/lightbulb:")


def when(value: str | None) -> datetime | None:
    """An ISO timestamp from a service as an aware datetime (for tables and charts)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def ago(value: str | None, now: datetime | None = None) -> str:
    moment = when(value)
    if moment is None:
        return "—"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


# ---------------------------------------------------------------- the alert filter bar


def alert_filters(
    page: str, facets: dict[str, list[str]], *, default_status: Sequence[str] = ("open",)
) -> AlertQuery:
    """Status, severity, team, service, source and text; widget keys `<page>.<filter>`.

    The values live in the URL (bind="query-params"), so a filtered list can be bookmarked or
    shared, and they survive going to another page and back.
    """
    top = st.columns([2, 2, 3])
    status = top[0].multiselect(
        "Status",
        STATUSES,
        # a saved view may have set it: a default as well would be ignored, with a warning
        default=None if f"{page}.status" in st.session_state else list(default_status),
        key=f"{page}.status",
        bind="query-params",
        placeholder="any status",
    )
    severity = top[1].multiselect(
        "Severity",
        SEVERITIES,
        key=f"{page}.severity",
        bind="query-params",
        format_func=lambda s: f"{SEVERITY_ICON[s]} {s}",
        placeholder="any severity",
    )
    text = top[2].text_input(
        "Search",
        key=f"{page}.q",
        bind="query-params",
        placeholder="title, service, host, rule…",
    )
    more = st.columns(3)
    picked: dict[str, list[str]] = {}
    for column, name in zip(more, ("team", "service", "source"), strict=True):
        picked[name] = column.multiselect(
            name.capitalize(),
            facets.get(name, []),
            key=f"{page}.{name}",
            bind="query-params",
            accept_new_options=True,
            placeholder=f"any {name}",
        )
    return AlertQuery(
        status=tuple(status),
        severity=tuple(severity),
        team=tuple(picked["team"]),
        service=tuple(picked["service"]),
        source=tuple(picked["source"]),
        q=text.strip() or None,
    )


def facets_of(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The values seen in some alerts, as filter choices."""
    return {
        name: sorted({str(r[name]) for r in rows if r.get(name)})
        for name in ("team", "service", "source", "rule", "assignee")
    }


# ---------------------------------------------------------------- the alert table


def alert_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "severity": [f"{SEVERITY_ICON.get(r['severity'], '')} {r['severity']}" for r in rows],
            "status": [f"{STATUS_ICON.get(r['status'], '')} {r['status']}" for r in rows],
            "title": [r["title"] for r in rows],
            "service": [r["service"] for r in rows],
            "team": [r["team"] for r in rows],
            "source": [r["source"] for r in rows],
            "occurrences": [r["occurrences"] for r in rows],
            "created": [when(r["created_at"]) for r in rows],
            "last seen": [when(r["last_seen"]) for r in rows],
            "assignee": [r["assignee"] or "" for r in rows],
        },
        schema_overrides={
            "created": pl.Datetime("us", "UTC"),
            "last seen": pl.Datetime("us", "UTC"),
        },
    )


ROW_PX = 35  # st.dataframe's row height


def alert_table(
    rows: list[dict[str, Any]],
    key: str,
    *,
    selectable: bool = True,
    height: int | Literal["auto"] = "auto",
) -> list[int]:
    """The alerts as a table; returns the ids of the selected rows."""
    frame = alert_frame(rows)
    if isinstance(height, int):  # no empty grid under a short list
        height = min(height, ROW_PX * (frame.height + 1) + 3)
    config = {
        "id": st.column_config.NumberColumn("#", format="%d", width="small"),
        "title": st.column_config.TextColumn("Title", width="large"),
        "occurrences": st.column_config.NumberColumn("Seen", format="%d", width="small"),
        "created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
        "last seen": st.column_config.DatetimeColumn("Last seen", format="distance"),
    }
    if not selectable:
        st.dataframe(frame, hide_index=True, column_config=config, height=height, key=key)
        return []
    event = st.dataframe(
        frame,
        hide_index=True,
        column_config=config,
        key=key,
        height=height,
        on_select="rerun",
        selection_mode="multi-row",
    )
    picked = event.selection.rows if event is not None else []
    return [int(frame["id"][i]) for i in picked if i < frame.height]


# ---------------------------------------------------------------- exports


def _flat(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _safe_cell(value: Any) -> Any:
    # OWASP CSV injection: a cell a spreadsheet would run as a formula gets an apostrophe.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_bytes(rows: list[dict[str, Any]], fmt: str) -> bytes:
    """Rows as a CSV, JSON or Parquet file (nested values as JSON text in CSV and Parquet)."""
    if fmt == "json":
        return orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    flat = {c: [_flat(r.get(c)) for r in rows] for c in columns}
    if fmt == "csv":
        flat = {c: [_safe_cell(v) for v in values] for c, values in flat.items()}
    frame = pl.DataFrame(flat, strict=False, nan_to_null=True) if rows else pl.DataFrame()
    if fmt == "csv":
        return frame.write_csv().encode()
    if fmt == "parquet":
        import io

        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        return buffer.getvalue()
    raise ValueError(f"unknown export format {fmt!r}; choose csv, json or parquet")


def export_buttons(
    rows: list[dict[str, Any]], name: str, key: str, *, label: str = "Export"
) -> None:
    """A format picker and a download button for exactly the rows shown."""
    with st.popover(label, icon=":material/download:"):
        fmt_name = (
            st.segmented_control(
                "Format",
                list(EXPORT_FORMATS),
                default="CSV",
                key=f"{key}.format",
            )
            or "CSV"
        )
        ext, mime = EXPORT_FORMATS[fmt_name]
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        st.download_button(
            f"Download {len(rows):,} rows as {fmt_name}",
            data=export_bytes(rows, ext),
            file_name=f"klaxon-{name}-{stamp}.{ext}",
            mime=mime,
            key=f"{key}.download",
            icon=":material/file_download:",
            on_click="ignore",
        )


# ---------------------------------------------------------------- the rule editor

_LIVE_JS = """
export default function (component) {
  const { data } = component;
  const selector = `.st-key-${CSS.escape(data.key)} textarea`;
  let tries = 0;
  const attach = () => {
    const area = document.querySelector(selector);
    if (!area) { if (tries++ < 50) setTimeout(attach, 100); return; }
    if (area.dataset.klaxonLive === "1") return;
    area.dataset.klaxonLive = "1";
    let timer = null;
    area.addEventListener("input", () => {
      clearTimeout(timer);
      // Commit as if Ctrl+Enter was pressed: the text reaches Python, focus and caret stay.
      timer = setTimeout(() => area.dispatchEvent(new KeyboardEvent("keydown", {
        key: "Enter", code: "Enter", keyCode: 13, which: 13, ctrlKey: true, bubbles: true,
      })), data.delay);
    });
  };
  attach();
}
"""
_live = st.components.v2.component("klaxon.live_text", js=_LIVE_JS, isolate_styles=False)


def live_text_area(
    label: str, key: str, *, height: int = 420, delay_ms: int = 600, **kwargs: Any
) -> str:
    """A text area whose text reaches Python a moment after the author stops typing."""
    text = st.text_area(label, key=key, height=height, **kwargs)
    _live(key=f"{key}.live", data={"key": key, "delay": delay_ms}, height=0)
    return text or ""


def show_errors(
    errors: Sequence[DslError], *, ok_text: str = "No errors: the rules compile."
) -> None:
    """Each error as line, column and message, with its caret block."""
    if not errors:
        st.success(ok_text, icon=":material/check_circle:")
        return
    st.error(
        f"{len(errors)} error{'s' if len(errors) > 1 else ''}: not saved until fixed.",
        icon=":material/error:",
    )
    for err in errors:
        st.markdown(f"**Line {err.line}, column {err.column}** — {err.full_message}")
        st.code(str(err), language=None)


def rule_editor(
    key: str, initial: str, *, path: str = "rules.klx", height: int = 480, disabled: bool = False
) -> tuple[str, list[DslError]]:
    """The rules text with its `check` errors beside it, updated as the author types."""
    if key not in st.session_state:
        st.session_state[key] = initial
    left, right = st.columns([3, 2], gap="medium")
    with left:
        text = live_text_area(
            "Rules",
            key,
            height=height,
            label_visibility="collapsed",
            disabled=disabled,
            persist_state="session",
        )
    errors = check_rules(text, path)
    with right:
        show_errors(errors)
    return text, errors
