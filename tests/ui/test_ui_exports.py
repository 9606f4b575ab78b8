"""Exports: what a table shows downloads as CSV, JSON or Parquet, with the same rows."""

from __future__ import annotations

import io
from typing import Any

import orjson
import polars as pl
import pytest

from app.widgets import export_bytes


def _offered(downloads: dict[str, bytes], prefix: str, ext: str) -> bytes:
    names = [n for n in downloads if n.startswith(prefix) and n.endswith(f".{ext}")]
    assert names, f"no {ext} file offered; got {list(downloads)}"
    return downloads[names[-1]]


@pytest.mark.parametrize("fmt", ["CSV", "JSON", "Parquet"])
def test_the_alert_list_exports_as_a_file(
    signed_in: Any, downloads: dict[str, bytes], fmt: str
) -> None:
    at = signed_in("operator", page="triage")
    shown = [int(i) for i in at.dataframe(key="triage.table").value["id"]]
    at.segmented_control(key="triage.export.format").set_value(fmt).run()
    assert not at.exception
    data = _offered(downloads, "klaxon-alerts-", fmt.lower())
    if fmt == "CSV":
        ids = pl.read_csv(io.BytesIO(data))["id"].to_list()
    elif fmt == "JSON":
        ids = [r["id"] for r in orjson.loads(data)]
    else:
        ids = pl.read_parquet(io.BytesIO(data))["id"].to_list()
    assert ids == shown
    label = at.download_button(key="triage.export.download").label
    assert f"{len(shown)} rows as {fmt}" in label


def test_csv_cells_a_spreadsheet_would_run_are_defused() -> None:
    rows = [
        {"id": 1, "title": '=HYPERLINK("http://evil")', "labels": {"a": "b"}},
        {"id": 2, "title": "fine"},
    ]
    text = export_bytes(rows, "csv").decode()
    assert "'=HYPERLINK" in text
    assert '"{""a"":""b""}"' in text  # nested values as JSON text
    assert orjson.loads(export_bytes(rows, "json"))[0]["title"].startswith("=")  # JSON stays exact


def test_an_empty_table_still_exports() -> None:
    assert export_bytes([], "csv").strip() == b""
    assert orjson.loads(export_bytes([], "json")) == []
    assert pl.read_parquet(io.BytesIO(export_bytes([], "parquet"))).height == 0
