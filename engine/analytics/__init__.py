"""Analytics (DESIGN.md §7): DuckDB over Parquet snapshots; backtests, exports, reports."""
