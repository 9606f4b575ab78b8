"""Correlation into incidents (DSL.md §5): alerts with equal `by` values within `within`.

An alert joins the open incident of its group if it fires within `within` (inclusive) of that
incident's first alert; otherwise it opens a new incident whose `opened` is its own instant.
Each group is a chain of incidents, found a link at a time for every group at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dsl.compiler import CompiledCorrelate
from engine.pipeline.matching import key_json

INCIDENTS = pl.Schema(
    {
        "incident_by": pl.String,
        "incident_key": pl.String,
        "incident_opened": pl.Int64,
        "within": pl.Int64,
    }
)
ASSIGNED = pl.Schema(
    {
        "__row": pl.UInt32,
        "incident_by": pl.String,
        "incident_key": pl.String,
        "incident_opened": pl.Int64,
    }
)


def correlate(
    fired: pl.DataFrame, blocks: Sequence[CompiledCorrelate], open_incidents: pl.DataFrame, hi: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Assign incidents to fired alerts (alert frame rows with `at`), in order of `at`.

    Returns (per fired row: __row, incident_by, incident_key, incident_opened) and the
    incidents that can still take alerts at or after `hi`.
    """
    rows = fired.with_row_index("__row")
    taken = pl.Series("__row", [], dtype=pl.UInt32)
    assigned: list[pl.DataFrame] = []
    latest = open_incidents
    for block in blocks:
        cand = (
            rows.filter(~pl.col("__row").is_in(taken.implode()) & block.when)
            .select("__row", "at", ikey=key_json(block.by, block.by_exprs))
            .sort("at", "__row")
        )
        if cand.height == 0:
            continue
        current = latest.filter(pl.col("incident_by") == block.correlate_id).select(
            ikey="incident_key", opened="incident_opened"
        )
        pending = cand
        while pending.height:
            pending = pending.join(current, on="ikey", how="left")
            joins = pl.col("opened").is_not_null() & (
                pl.col("at") <= pl.col("opened") + block.within_ms * 1000
            )
            done = pending.filter(joins).select("__row", "ikey", "opened")
            assigned.append(
                done.select(
                    "__row",
                    incident_by=pl.lit(block.correlate_id),
                    incident_key="ikey",
                    incident_opened="opened",
                )
            )
            pending = pending.filter(~joins).drop("opened")
            # The first alert of each group left over opens that group's next incident.
            openers = pending.group_by("ikey", maintain_order=True).agg(opened=pl.col("at").min())
            current = pl.concat(
                [current.join(openers, on="ikey", how="anti"), openers], how="vertical_relaxed"
            )
        latest = pl.concat(
            [
                latest.filter(pl.col("incident_by") != block.correlate_id),
                current.select(
                    incident_by=pl.lit(block.correlate_id),
                    incident_key="ikey",
                    incident_opened="opened",
                    within=pl.lit(block.within_ms * 1000, dtype=pl.Int64),
                ),
            ],
            how="vertical_relaxed",
        )
        taken = pl.concat([taken, cand["__row"]])
    result = (
        pl.concat(assigned, how="vertical_relaxed").cast(ASSIGNED)
        if assigned
        else pl.DataFrame(schema=ASSIGNED)
    )
    still_open = latest.filter(pl.col("incident_opened") + pl.col("within") >= hi).cast(INCIDENTS)
    return result, still_open
