"""Snapshot file paths as DuckDB SQL literals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def quote(path: Path) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def parquet_list(paths: Sequence[Path]) -> str:
    """Paths as a DuckDB list literal, for read_parquet([...])."""
    return "[" + ", ".join(quote(p) for p in paths) + "]"
