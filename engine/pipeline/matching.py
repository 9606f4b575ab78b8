"""Events → engine time and rule matches: one lazy Polars pass evaluates every rule's `when`.

Engine time (DSL.md §4.1): each event's effective instant is the watermark as it stood when the
event arrived, or its own `ts` if later: `t = max(ts, watermark so far)`. In arrival order this
never decreases, so the stream is in order by construction and cutting it into batches changes
nothing. An event more than the largest window behind the watermark is late.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dsl.compiler import CompiledRule

LABEL_PREFIX = "label:"


def label_column(key: str) -> pl.Expr:
    """How compiled rules read a label: from a column extracted once per batch."""
    return pl.col(LABEL_PREFIX + key)


def extract_labels(df: pl.DataFrame, keys: frozenset[str] | set[str]) -> pl.DataFrame:
    if not keys:
        return df
    return df.with_columns(
        pl.col("labels").map.get(k).alias(LABEL_PREFIX + k) for k in sorted(keys)
    )


def stamp_times(
    events: pl.DataFrame,
    *,
    watermark: int | None,
    floor: int | None,
    first_seq: int,
    horizon_us: int,
) -> pl.DataFrame:
    """Add `seq` (arrival order), `t_src` (ts in µs), `t` (engine instant) and `late`.

    `floor` is the first instant not yet closed: an event arriving after its own instant was
    closed is applied at the floor.
    """
    t_src = pl.col("ts").dt.epoch("us")
    before = t_src.cum_max().shift(1)
    if watermark is not None:
        before = pl.max_horizontal(before.fill_null(watermark), pl.lit(watermark))
    t = pl.max_horizontal(t_src, before)
    if floor is not None:
        t = pl.max_horizontal(t, pl.lit(floor))
    late = (t_src < before - horizon_us).fill_null(False)
    return events.with_columns(
        seq=pl.int_range(first_seq, first_seq + events.height, dtype=pl.Int64),
        t_src=t_src,
        t=t,
        late=late,
    )


@dataclass(frozen=True)
class Matches:
    """Which (rule, event) pairs match: `rule` index and `row` index into the events frame."""

    rows: pl.DataFrame  # rule_idx: Int32, row: Int64 (sorted by rule_idx, row)


def match_rules(events: pl.DataFrame, rules: tuple[CompiledRule, ...]) -> Matches:
    """Evaluate every rule's `when` over the batch in one lazy query; keep the true pairs."""
    if not rules or events.height == 0:
        return Matches(pl.DataFrame(schema={"rule_idx": pl.Int32, "row": pl.Int64}))
    names = [str(i) for i in range(len(rules))]
    masks = (
        events.lazy()
        # with_columns, not select: a constant `when true` must still cover every row.
        .with_columns([r.when.alias(n) for n, r in zip(names, rules, strict=True)])
        .select(names)
        .select(pl.all().arg_true().cast(pl.Int64).implode())
        .collect()
    )
    parts = []
    for i, name in enumerate(masks.columns):
        rows = masks[name][0]
        if len(rows):
            parts.append(
                pl.DataFrame(
                    {
                        "rule_idx": pl.Series([i], dtype=pl.Int32).new_from_index(0, len(rows)),
                        "row": rows,
                    }
                )
            )
    if not parts:
        return Matches(pl.DataFrame(schema={"rule_idx": pl.Int32, "row": pl.Int64}))
    return Matches(pl.concat(parts))


def take_rows(df: pl.DataFrame, rows: pl.Series, *reading: pl.Expr) -> pl.DataFrame:
    """The rows at the given positions, in that order: only the columns the `reading`
    expressions read, if given (a batch has dozens of columns, a key reads one or two)."""
    names = {name for expr in reading for name in expr.meta.root_names()}
    if names:
        return df.select(pl.col(c).gather(rows) for c in df.columns if c in names)
    return df.select(pl.all().gather(rows))  # a constant still needs the rows


def key_json(fields: tuple[str, ...], exprs: tuple[pl.Expr, ...]) -> pl.Expr:
    """The alert key as canonical JSON: sorted field names, no spaces (DSL.md §7)."""
    order = sorted(range(len(fields)), key=lambda i: fields[i])
    return pl.struct([exprs[i].alias(fields[i]) for i in order]).struct.json_encode()


def keyed_matches(
    events: pl.DataFrame, matches: Matches, rules: tuple[CompiledRule, ...]
) -> pl.DataFrame:
    """Matches with their alert key, computed once per distinct `by` over the rows that need it."""
    m = matches.rows
    if m.height == 0:
        return m.with_columns(key=pl.lit(None, dtype=pl.String))
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(rules):
        groups.setdefault(r.key_fields, []).append(i)
    parts = []
    for fields, idxs in groups.items():
        sub = m.filter(pl.col("rule_idx").is_in(idxs))
        if sub.height == 0:
            continue
        rows = sub["row"].unique().sort()
        rule = rules[idxs[0]]
        key = key_json(fields, rule.key_exprs).alias("key")
        keys = take_rows(events, rows, key).select(key)
        table = pl.DataFrame({"row": rows, "key": keys["key"]})
        parts.append(sub.join(table, on="row", how="left"))
    # Each part keeps the matches' order (rule_idx, row) for its rules: a stable sort on
    # rule_idx alone restores it.
    return pl.concat(parts).sort("rule_idx", maintain_order=True)
