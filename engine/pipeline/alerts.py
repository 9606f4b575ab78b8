"""Transitions → alerts: severity, value, title and labels rendered, routes applied (DSL.md §4–5).

Every expression here works on the alert frame: the latest event that fed each alert (its
columns and labels) plus `rule`, `team`, the alert's `severity`, `value` and `count`.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dsl.compiler import (
    CompiledRoute,
    CompiledRule,
    CompiledRules,
    Scope,
    compile_template,
    render_value,
)
from dsl.fields import ALERT_NAMES, EVENT_COLUMNS, Kind
from dsl.templates import Template
from engine.pipeline.matching import LABEL_PREFIX, extract_labels, label_column

# The event context every alert carries (from the latest event that fed it).
INFO_SCHEMA = pl.Schema(
    {
        "seq": pl.Int64(),
        "event_id": pl.String(),
        "ts": pl.Int64(),
        "kind": pl.String(),
        "source": pl.String(),
        "source_id": pl.String(),
        "fingerprint": pl.String(),
        "title": pl.String(),
        "description": pl.String(),
        "ev_severity": pl.String(),
        "status": pl.String(),
        "service": pl.String(),
        "environment": pl.String(),
        "host": pl.String(),
        "ev_value": pl.Float64(),
        "labels": pl.Map(pl.String, pl.String),
    }
)

ESCALATE = pl.List(pl.Struct({"after_ms": pl.Int64, "target": pl.String}))
LABEL_LIST = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))

# Routing decisions an alert keeps from its firing to its resolve.
ROUTED = ("team", "severity", "notify", "escalate", "alert_labels")


def info_of(events: pl.DataFrame) -> pl.DataFrame:
    """The context columns of a batch's events, keyed by `seq`."""
    return events.select(
        "seq",
        "event_id",
        ts="t_src",
        kind=pl.col("kind").cast(pl.String),
        source="source",
        source_id="source_id",
        fingerprint="fingerprint",
        title="title",
        description="description",
        ev_severity=pl.col("severity").cast(pl.String),
        status=pl.col("status").cast(pl.String),
        service="service",
        environment="environment",
        host="host",
        ev_value="value",
        labels="labels",
    )


def template_scope() -> Scope:
    """Names a template can use: rule, severity, value, count, key fields, columns and labels."""
    names = {**EVENT_COLUMNS, **ALERT_NAMES, "count": Kind.NUMBER}
    return Scope(names, label_column)


SEVERITY_ENUM = pl.Enum(["info", "low", "medium", "high", "critical"])
_RULE_META = pl.Schema(
    {
        "rule": pl.String(),
        "fixed_severity": pl.String(),
        "from_event": pl.Boolean(),  # event and `new` rules take value and severity from the event
        "from_window": pl.Boolean(),  # window rules report their aggregate
        "team": pl.String(),
        "notify": pl.List(pl.String),
        "escalate": ESCALATE,
    }
)
_PARTS = pl.Schema(
    {"rule": pl.String, "slot": pl.String, "idx": pl.Int32, "literal": pl.String, "fid": pl.Int32}
)
TITLE_SLOT = "\x00title"


def _label_entries(pairs: Sequence[tuple[str, Template]], scope: Scope) -> pl.Expr:
    return pl.concat_list(
        [pl.struct(key=pl.lit(k), value=compile_template(t, scope)) for k, t in pairs]
    )


def rule_meta(rules: Sequence[CompiledRule], kinds: dict[str, str]) -> pl.DataFrame:
    """One row per rule: what every transition of that rule gets before routing."""
    return pl.DataFrame(
        {
            "rule": [r.rule_id for r in rules],
            "fixed_severity": [r.severity for r in rules],
            "from_event": [kinds[r.rule_id] in ("event", "new") for r in rules],
            "from_window": [kinds[r.rule_id] == "window" for r in rules],
            "team": [r.team for r in rules],
            "notify": [list(r.notify) for r in rules],
            "escalate": [[{"after_ms": ms, "target": t} for ms, t in r.escalate] for r in rules],
        },
        schema=_RULE_META,
    )


class TemplateSet:
    """Every template of a set of rules (or routes), rendered for many rows at once.

    Templates become rows of parts (literal text or a field); each distinct field is rendered
    once per alert, and the parts of each (alert, slot) are joined in order. A few joins and a
    group-by, however many rules there are.
    """

    def __init__(self, templates: dict[str, list[tuple[str, Template]]]) -> None:
        self.scope = template_scope()
        fields: dict[tuple[str, str], int] = {}
        exprs: list[pl.Expr] = []
        parts: dict[str, list[str | int | None]] = {name: [] for name in _PARTS}
        for owner, slots in templates.items():
            for slot, tpl in slots:
                for idx, part in enumerate(tpl.parts or ("",)):
                    fid = None
                    literal = None
                    if isinstance(part, str):
                        literal = part
                    else:
                        ident = (
                            type(part).__name__,
                            getattr(part, "key", getattr(part, "name", "")),
                        )
                        if ident not in fields:
                            fields[ident] = len(exprs)
                            exprs.append(render_value(self.scope.resolve(part)))
                        fid = fields[ident]
                    for name, value in zip(_PARTS, (owner, slot, idx, literal, fid), strict=True):
                        parts[name].append(value)
        self.parts = pl.DataFrame(parts, schema=_PARTS)
        self.exprs = exprs

    @property
    def labels_used(self) -> set[str]:
        return set(self.scope.labels_used)

    def render(self, frame: pl.DataFrame, owner: str = "rule") -> pl.DataFrame:
        """(row, slot, text) for every template slot of each row's owner (rule or route id)."""
        rows = frame.select(
            pl.int_range(0, frame.height, dtype=pl.UInt32).alias("row"), pl.col(owner).alias("rule")
        )
        wanted = rows.join(self.parts, on="rule", how="inner")
        if wanted.height == 0:
            return pl.DataFrame(schema={"row": pl.UInt32, "slot": pl.String, "text": pl.String})
        if self.exprs:
            values = (
                frame.select(
                    pl.int_range(0, frame.height, dtype=pl.UInt32).alias("row"),
                    *[e.alias(str(i)) for i, e in enumerate(self.exprs)],
                )
                .unpivot(index="row", variable_name="fid", value_name="text")
                .with_columns(pl.col("fid").cast(pl.Int32))
            )
            wanted = wanted.join(values, on=["row", "fid"], how="left")
        else:
            wanted = wanted.with_columns(text=pl.lit(None, dtype=pl.String))
        return (
            wanted.with_columns(text=pl.coalesce("literal", "text").fill_null(""))
            .sort("row", "slot", "idx")
            .group_by("row", "slot", maintain_order=True)
            .agg(pl.col("text").str.join(""))
        )


def rule_templates(rules: Sequence[CompiledRule]) -> TemplateSet:
    return TemplateSet(
        {
            r.rule_id: ([(TITLE_SLOT, r.title)] if r.title is not None else []) + list(r.labels)
            for r in rules
        }
    )


def _apply_rendered(frame: pl.DataFrame, rendered: pl.DataFrame) -> pl.DataFrame:
    """Rendered slots → `alert_title` (if templated) and `alert_labels` entries appended."""
    titles = rendered.filter(pl.col("slot") == TITLE_SLOT).select("row", rendered_title="text")
    labels = (
        rendered.filter(pl.col("slot") != TITLE_SLOT)
        .group_by("row", maintain_order=True)
        .agg(rendered_labels=pl.struct(key="slot", value="text"))
    )
    return (
        frame.with_row_index("row")
        .join(titles, on="row", how="left")
        .join(labels, on="row", how="left")
        .drop("row")
    )


def assemble(
    steps: pl.DataFrame,
    info: pl.DataFrame,
    compiled: CompiledRules,
    meta: pl.DataFrame,
    templates: TemplateSet,
) -> pl.DataFrame:
    """Step outputs (rule, key, at, transition, info_seq, occurrences, first_seen, agg) → alerts.

    Adds the event context, the alert's severity, value, count, title and rule labels.
    """
    frame = steps.join(info, left_on="info_seq", right_on="seq", how="left").join(
        meta, on="rule", how="left"
    )
    frame = extract_labels(frame, set(compiled.alert_labels) | templates.labels_used)
    frame = frame.with_columns(
        severity=pl.coalesce(
            "fixed_severity",
            pl.when("from_event").then(pl.col("ev_severity")),
            pl.lit("medium"),
        ).cast(SEVERITY_ENUM),
        value=pl.when("from_event")
        .then(pl.col("ev_value"))
        .when("from_window")
        .then(pl.col("agg"))
        .otherwise(None),
        count=pl.col("occurrences"),
    )
    frame = _apply_rendered(frame, templates.render(frame))
    fallback = (
        pl.when(pl.col("title").fill_null("") != "").then(pl.col("title")).otherwise(pl.col("rule"))
    )
    return frame.with_columns(
        alert_title=pl.coalesce("rendered_title", fallback),
        alert_labels=pl.col("rendered_labels")
        .fill_null(pl.lit([], dtype=LABEL_LIST))
        .cast(LABEL_LIST),
    ).drop("fixed_severity", "from_event", "from_window", "rendered_title", "rendered_labels")


def apply_routes(frame: pl.DataFrame, routes: Sequence[CompiledRoute]) -> pl.DataFrame:
    """First matching route applies, then stops unless it says `continue` (DSL.md §5).

    `notify` and `escalate` accumulate over the rule and every applied route, each channel
    once in order of first mention; `team`, `severity` and `labels` are overridden by each
    later match. Every route sees the alert as the rule made it.
    """
    if not routes or frame.height == 0:
        return frame
    names = [f"route{i}" for i in range(len(routes))]
    matched = (
        frame.lazy()
        .with_columns([r.when.alias(n) for n, r in zip(names, routes, strict=True)])
        .select(names)
        .collect()
    )
    applied: list[pl.Series] = []
    stopped = pl.Series([False] * frame.height)
    for i, route in enumerate(routes):
        first = matched[f"route{i}"] & ~stopped
        applied.append(first.alias(f"applied{i}"))
        if not route.is_continue:
            stopped = stopped | first
    team, severity = pl.col("team"), pl.col("severity")
    notify_parts: list[pl.Expr] = [pl.col("notify")]
    escalate_parts: list[pl.Expr] = [pl.col("escalate")]
    label_parts: list[pl.Expr] = [pl.col("alert_labels")]
    scope = template_scope()
    for i, route in enumerate(routes):
        hit = pl.col(f"applied{i}")
        if route.team:
            team = pl.when(hit).then(pl.lit(route.team)).otherwise(team)
        if route.severity:
            severity = (
                pl.when(hit).then(pl.lit(route.severity, dtype=SEVERITY_ENUM)).otherwise(severity)
            )
        if route.notify:
            notify_parts.append(
                pl.when(hit)
                .then(pl.lit(list(route.notify), dtype=pl.List(pl.String)))
                .otherwise(pl.lit([], dtype=pl.List(pl.String)))
            )
        if route.escalate:
            items = [{"after_ms": ms, "target": t} for ms, t in route.escalate]
            escalate_parts.append(
                pl.when(hit)
                .then(pl.lit(items, dtype=ESCALATE))
                .otherwise(pl.lit([], dtype=ESCALATE))
            )
        if route.labels:
            label_parts.append(
                pl.when(hit)
                .then(_label_entries(route.labels, scope))
                .otherwise(pl.lit([], dtype=LABEL_LIST))
            )
    frame = extract_labels(frame.with_columns(applied), scope.labels_used - set(frame.columns))
    return frame.with_columns(
        team=team,
        severity=severity,
        notify=pl.concat_list(notify_parts).list.unique(maintain_order=True),
        escalate=pl.concat_list(escalate_parts).list.unique(maintain_order=True),
        alert_labels=_last_per_key(pl.concat_list(label_parts)),
    ).drop([f"applied{i}" for i in range(len(routes))])


def _last_per_key(entries: pl.Expr) -> pl.Expr:
    """[{key, value}, ...] with later entries overriding earlier ones of the same key."""
    return (
        entries.list.reverse()
        .list.eval(pl.element().filter(pl.element().struct.field("key").is_first_distinct()))
        .list.reverse()
    )


def labels_map(entries: pl.Expr) -> pl.Expr:
    return entries.cast(pl.Map(pl.String, pl.String))


__all__ = [
    "ESCALATE",
    "INFO_SCHEMA",
    "LABEL_LIST",
    "LABEL_PREFIX",
    "ROUTED",
    "apply_routes",
    "assemble",
    "info_of",
    "labels_map",
    "render_value",
]
