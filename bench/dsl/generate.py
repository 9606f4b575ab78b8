"""Generated workloads for the rule-language benchmark: rules files and canonical event frames.

Everything is seeded, so two runs measure the same rules over the same events.
"""

from __future__ import annotations

import random

import polars as pl

from dsl.fields import EVENT_KINDS, SEVERITIES, STATUSES

SOURCES = ("prometheus", "grafana", "datadog", "cloudwatch", "webhook", "auth")
ENVIRONMENTS = ("prod", "staging", "dev", "Prod")
SERVICES = tuple(f"svc-{i}" for i in range(40))
TITLES = (
    "High error rate",
    "Request timeout on upstream",
    "Disk almost full",
    "Login failed",
    "Pod restarted",
    "Connection timeout",
)
PATHS = ("/api/v1/users", "/api/v1/orders", "/health", "/login", "/static/app.js")

# (label, share of events that have it); the rest miss it, as real labels go missing
LABEL_SHARES = {
    "error_rate": 0.8,
    "status_code": 0.6,
    "latency_ms": 0.7,
    "region": 0.9,
    "path": 0.5,
    "trace_id": 0.3,
    "owner": 0.1,
}


# ---------------------------------------------------------------- rules


def _atom(rng: random.Random) -> str:
    pick = rng.randrange(20)
    if pick == 0:
        return f'source == "{rng.choice(SOURCES)}"'
    if pick == 1:
        names = ", ".join(f'"{s}"' for s in rng.sample(SERVICES, 3))
        return f"service in [{names}]"
    if pick == 2:
        return f'environment != "{rng.choice(ENVIRONMENTS)}"'
    if pick == 3:
        return f'severity >= "{rng.choice(SEVERITIES)}"'
    if pick == 4:
        return f"error_rate > {rng.choice((0.01, 0.05, 0.1, 0.5))}"
    if pick == 5:
        return f"status_code >= {rng.choice((400, 500))}"
    if pick == 6:
        return "status_code in [500, 502, 503]"
    if pick == 7:
        return f'labels.region == "{rng.choice(("eu", "us", "ap"))}"'
    if pick == 8:
        return f'host =~ "^{rng.choice(("web", "db", "cache"))}-[0-9]+$"'
    if pick == 9:
        return 'contains(title, "timeout")'
    if pick == 10:
        return f'startswith(host, "{rng.choice(("web-1", "db-", "cache-2"))}")'
    if pick == 11:
        return 'lower(environment) == "prod"'
    if pick == 12:
        return "exists(trace_id)"
    if pick == 13:
        return "not exists(owner)"
    if pick == 14:
        return f"value > {rng.choice((0.5, 0.9, 0.99))}"
    if pick == 15:
        return f"latency_ms / 1000 > {rng.choice((0.2, 0.5, 1))}"
    if pick == 16:
        return 'kind == "event"'
    if pick == 17:
        return 'status == "firing"'
    if pick == 18:
        return 'path !~ "^/(health|static)"'
    return f'not service == "{rng.choice(SERVICES)}"'


def _condition(rng: random.Random) -> str:
    parts = [_atom(rng) for _ in range(rng.randint(1, 4))]
    text = parts[0]
    for part in parts[1:]:
        text = f"({text} or {part})" if rng.random() < 0.2 else f"{text} and {part}"
    return text


def _rule(rng: random.Random, i: int) -> str:
    lines = [f'rule r{i:04d} "{{{{ service }}}}: {{{{ title }}}} ({{{{ value }}}})"']
    lines.append(f"  when {_condition(rng)}")
    shape = rng.randrange(10)
    if shape == 0:
        lines.append(f"  count() > {rng.randint(5, 100)} within {rng.choice(('1m', '5m'))}")
    elif shape == 1:
        lines.append(f"  p95(latency_ms) > {rng.randint(100, 900)} within 5m")
    elif shape == 2:
        lines.append("  count() > 3 * prev(count()) within 10m")
    elif shape == 3:
        lines.append(f"  absent for {rng.choice(('5m', '10m', '1h'))}")
    elif shape == 4:
        lines.append("  new within 1d")
    if rng.random() < 0.7:
        fields = rng.sample(["service", "environment", "host", "labels.region"], rng.randint(1, 2))
        lines.append(f"  by {', '.join(fields)}")
    if rng.random() < 0.3:
        lines.append(f"  for {rng.choice(('30s', '2m', '5m'))}")
    if rng.random() < 0.3:
        lines.append(f"  resolve after {rng.choice(('10m', '1h'))}")
    if rng.random() < 0.5:
        lines.append(f"  severity {rng.choice(SEVERITIES)}")
    lines.append(f"  team team_{rng.randrange(12)}")
    if rng.random() < 0.4:
        lines.append(f'  labels runbook = "https://wiki.example/r/{i}", summary = "{{{{ host }}}}"')
    lines.append(f"  notify slack_{rng.randrange(8)}, email_{rng.randrange(4)}")
    if rng.random() < 0.3:
        lines.append(f"  escalate after 15m to pager_{rng.randrange(4)}")
    lines.append("end")
    return "\n".join(lines)


def rules_text(count: int, seed: int = 1) -> str:
    """A rules file of `count` rules, plus a few routes, silences, inhibitions, correlations."""
    rng = random.Random(seed)
    blocks = [_rule(rng, i) for i in range(count)]
    extra = max(1, count // 50)
    for i in range(extra):
        blocks.append(
            f"route route_{i}\n  when {_condition(rng)}\n  team team_{i}\n"
            f"  notify slack_{i % 8}\n  continue\nend"
        )
        blocks.append(
            f'silence silence_{i} "maintenance"\n  when service == "{rng.choice(SERVICES)}"\n'
            f'  during mon-fri 22:00-06:00 in "Europe/Berlin"\nend'
        )
    for i in range(max(1, extra // 4)):
        blocks.append(
            f'inhibit inhibit_{i}\n  when severity < "critical"\n  while rule == "r{i:04d}"\n'
            "  on host\nend"
        )
        blocks.append(f"correlate correlate_{i}\n  when true\n  by service\n  within 10m\nend")
    return "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------- events


def _pick(seed: int, values: tuple[str, ...]) -> pl.Expr:
    """A value per row chosen by a hash of the row number: uniform, seeded, no Python loop."""
    index = (pl.col("i").hash(seed) % len(values)).cast(pl.Int64)
    return pl.lit(pl.Series(values)).get(index)


def _share(seed: int, share: float) -> pl.Expr:
    return (pl.col("i").hash(seed) % 10_000) < int(share * 10_000)


def _unit(seed: int) -> pl.Expr:
    return (pl.col("i").hash(seed) % 1_000_000).cast(pl.Float64) / 1_000_000


def events_frame(count: int, seed: int = 1) -> pl.DataFrame:
    """`count` canonical events (the columns of engine/schema.py EVENT_SCHEMA that rules read)."""
    base = pl.select(i=pl.int_range(count, dtype=pl.Int64)).lazy()
    hosts = tuple(f"{kind}-{n}" for kind in ("web", "db", "cache") for n in range(100))
    columns = base.select(
        "i",
        ts=pl.datetime(2026, 1, 1, time_zone="UTC") + pl.duration(milliseconds=pl.col("i")),
        kind=pl.when(_share(seed + 1, 0.9)).then(pl.lit("event")).otherwise(pl.lit("alert")),
        source=_pick(seed + 2, SOURCES),
        source_id=pl.lit(""),
        fingerprint=pl.col("i").hash(seed + 3).cast(pl.String),
        title=_pick(seed + 4, TITLES),
        description=pl.lit(""),
        severity=_pick(seed + 5, SEVERITIES),
        status=pl.when(_share(seed + 6, 0.95)).then(pl.lit("firing")).otherwise(pl.lit("resolved")),
        service=_pick(seed + 7, SERVICES),
        environment=_pick(seed + 8, ENVIRONMENTS),
        host=_pick(seed + 9, hosts),
        value=pl.when(_share(seed + 10, 0.9)).then(_unit(seed + 11)),
    )
    values = {
        "error_rate": pl.when(_share(seed + 20, 0.98))
        .then(_unit(seed + 21).round(3).cast(pl.String))
        .otherwise(pl.lit("n/a")),
        "status_code": _pick(seed + 22, ("200", "200", "201", "404", "500", "502", "503")),
        "latency_ms": (_unit(seed + 23) * 2000).round(0).cast(pl.Int64).cast(pl.String),
        "region": _pick(seed + 24, ("eu", "us", "ap", "")),
        "path": _pick(seed + 25, PATHS),
        "trace_id": pl.col("i").hash(seed + 26).cast(pl.String),
        "owner": _pick(seed + 27, ("alice", "bob")),
    }
    # Labels: one (row, key, value) per present label, gathered into a map per row. Every row
    # has `region` or at least the always-present `cluster`, so no row is left out.
    long = pl.concat(
        [
            base.filter(_share(seed + 40 + n, LABEL_SHARES[key])).select(
                "i", key=pl.lit(key), value=values[key]
            )
            for n, key in enumerate(LABEL_SHARES)
        ]
        + [base.select("i", key=pl.lit("cluster"), value=_pick(seed + 60, ("a", "b", "c")))]
    )
    labels = (
        long.group_by("i")
        .agg(pl.struct("key", "value").alias("labels"))
        .sort("i")
        .select(pl.col("labels").cast(pl.Map(pl.String, pl.String)))
    )
    frame = pl.concat([columns, labels], how="horizontal").collect()
    return frame.drop("i").with_columns(
        pl.col("kind").cast(pl.Enum(list(EVENT_KINDS))),
        pl.col("severity").cast(pl.Enum(list(SEVERITIES))),
        pl.col("status").cast(pl.Enum(list(STATUSES))),
    )
