"""The engine benchmark's workload: 100 rules and a stream of canonical events, both seeded.

The stream looks like a mid-sized shop's: six sources, 50 services, 500 hosts (each belongs to
one service), metric samples and log lines with numeric labels, alerts from monitoring tools,
heartbeats, logins. Most events match no rule, and most rules match a small share of events;
thresholds are set so that a few percent of keys alert.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa

from engine.schema import EVENT_SCHEMA, identity_hash

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # a Monday morning
RATE = 1_000_000 / (2 * 3600)  # events a second: a million events cover two hours
N_SERVICES = 50
N_HOSTS = 500
SERVICES = [f"svc-{i:02d}" for i in range(N_SERVICES)]
HOSTS = [f"host-{i:03d}" for i in range(N_HOSTS)]
REGIONS = ["eu-west", "us-east", "ap-south"]
ENVIRONMENTS = ["prod", "staging", "dev"]
PATHS = ["/api/orders", "/api/users", "/api/search", "/login", "/health", "/static/app.js"]

# (source, title, kind, share of the stream)
SHAPES: list[tuple[str, str, str, float]] = [
    ("app", "http_request", "event", 0.40),
    ("prometheus", "latency_sample", "event", 0.15),
    ("agent", "heartbeat", "event", 0.10),
    ("auth", "auth.failed", "event", 0.06),
    ("auth", "auth.ok", "event", 0.06),
    ("app", "db_query", "event", 0.05),
    ("app", "deploy", "event", 0.002),
    ("app", "error", "event", 0.058),
    ("prometheus", "HighErrorRate", "alert", 0.03),
    ("prometheus", "DiskFull", "alert", 0.02),
    ("grafana", "HighLatency", "alert", 0.02),
    ("datadog", "CPUHigh", "alert", 0.02),
    ("cloudwatch", "QueueBacklog", "alert", 0.01),
    ("prometheus", "PodCrashLooping", "alert", 0.01),
    ("grafana", "CertExpiring", "alert", 0.01),
]
ERRORS = ["TimeoutError", "KeyError", "ConnectionReset", "OOMKilled", "ValueError", "NullPointer"]


def generate_events(n: int, seed: int = 7, late_share: float = 0.02) -> pl.DataFrame:
    """`n` canonical events (EVENT_SCHEMA, fingerprints filled), in arrival order."""
    rng = np.random.default_rng(seed)
    shares = np.array([s[3] for s in SHAPES])
    shape = rng.choice(len(SHAPES), size=n, p=shares / shares.sum())
    # Arrival order is ts order, but 2% arrive up to 20 s after their time.
    span_s = n / RATE  # any size of stream has the same density
    offs = np.sort(rng.uniform(0, span_s, size=n))
    late = rng.random(n) < late_share
    offs = np.where(late, np.maximum(offs - rng.uniform(0, 20, size=n), 0), offs)
    ts_us = (int(START.timestamp()) * 1_000_000 + (offs * 1_000_000).astype(np.int64)).astype(
        np.int64
    )
    # Some hosts are busier than others (Zipf-like), and each belongs to one service.
    weights = 1.0 / np.arange(1, N_HOSTS + 1) ** 0.6
    host = rng.choice(N_HOSTS, size=n, p=weights / weights.sum())
    service = host % N_SERVICES
    # Two services have an error storm for a while: what the spike rules are for.
    storm = np.isin(service, [7, 19]) & (offs > 0.6 * span_s) & (offs < 0.62 * span_s)
    shape = np.where(storm & (rng.random(n) < 0.6), [s[1] for s in SHAPES].index("error"), shape)
    sources = np.array([s[0] for s in SHAPES])[shape]
    titles = np.array([s[1] for s in SHAPES])[shape]
    kinds = np.array([s[2] for s in SHAPES])[shape]
    is_alert = kinds == "alert"
    severity = rng.choice(
        ["info", "low", "medium", "high", "critical"], size=n, p=[0.4, 0.2, 0.25, 0.1, 0.05]
    )
    status = np.where(rng.random(n) < np.where(is_alert, 0.2, 0.02), "resolved", "firing")
    env = rng.choice(ENVIRONMENTS, size=n, p=[0.7, 0.2, 0.1])
    # Latency: log-normal around 120 ms; a few services have a bad stretch.
    latency = rng.lognormal(np.log(120), 0.6, size=n)
    slow = (service % 17 == 3) & (offs > 0.25 * span_s) & (offs < 0.4 * span_s)
    latency = np.where(slow, latency * 6, latency)
    status_code = rng.choice(
        ["200", "201", "404", "500", "502", "503"], size=n, p=[0.8, 0.05, 0.08, 0.04, 0.02, 0.01]
    )
    error_rate = np.round(rng.beta(1, 60, size=n), 4)
    client_ip = np.array([f"10.{i // 250}.{i % 250}.7" for i in range(4000)])[
        rng.integers(0, 4000, size=n)
    ]
    # A few addresses try many logins (brute force).
    attackers = np.array(["203.0.113.5", "198.51.100.9", "192.0.2.77"])
    is_auth_fail = titles == "auth.failed"
    attack = is_auth_fail & (rng.random(n) < 0.05)
    client_ip = np.where(attack, attackers[rng.integers(0, 3, size=n)], client_ip)
    users = np.array([f"user{i}" for i in range(20000)])[rng.integers(0, 20000, size=n)]
    error_type = np.array(ERRORS)[rng.integers(0, len(ERRORS), size=n)]
    # Rare error types appear once in a while: what `new within` rules look for.
    rare = rng.random(n) < 0.0005
    error_type = np.where(
        rare, np.char.add("Rare", rng.integers(0, 200, size=n).astype(str)), error_type
    )
    region = np.array(REGIONS)[host % 3]
    path = np.array(PATHS)[rng.integers(0, len(PATHS), size=n)]
    value = np.where(is_alert | (titles == "latency_sample"), np.round(latency, 1), np.nan)
    cpu = np.round(rng.uniform(5, 100, size=n), 1)
    queue = rng.integers(0, 5000, size=n)

    df = pl.DataFrame(
        {
            "event_id": pl.int_range(0, n, eager=True).cast(pl.String).str.pad_start(8, "0"),
            "ts": pl.Series(ts_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "kind": kinds,
            "source": sources,
            "title": titles,
            "severity": np.where(is_alert, severity, np.where(titles == "error", "high", "info")),
            "status": status,
            "service": np.array(SERVICES)[service],
            "environment": env,
            "host": np.array(HOSTS)[host],
            "value": pl.Series(value).fill_nan(None),
        }
    )
    label_cols = {
        "latency_ms": (titles == "http_request")
        | (titles == "latency_sample")
        | (titles == "db_query"),
        "status_code": titles == "http_request",
        "error_rate": titles == "latency_sample",
        "client_ip": (titles == "auth.failed") | (titles == "auth.ok"),
        "user": (titles == "auth.failed") | (titles == "auth.ok") | (titles == "deploy"),
        "error_type": titles == "error",
        "region": np.ones(n, dtype=bool),
        "path": titles == "http_request",
        "cpu": titles == "CPUHigh",
        "queue_depth": titles == "QueueBacklog",
    }
    values = {
        "latency_ms": np.round(latency, 1).astype(str),
        "status_code": status_code,
        "error_rate": error_rate.astype(str),
        "client_ip": client_ip,
        "user": users,
        "error_type": error_type,
        "region": region,
        "path": path,
        "cpu": cpu.astype(str),
        "queue_depth": queue.astype(str),
    }
    df = df.with_columns(labels=_label_map(n, label_cols, values))
    ident = pl.concat_str(["source", "title", "service", "environment", "host"], separator="\x1f")
    uniques = df.select(ident.alias("i")).unique()["i"].to_list()
    table = {u: identity_hash(u) for u in uniques}
    df = df.with_columns(
        fingerprint=ident.replace_strict(table, return_dtype=pl.String),
        source_id=pl.lit(""),
        description=pl.lit(""),
        received_at=pl.col("ts"),
        raw=pl.lit(None, dtype=pl.String),
    )
    return df.select([pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items()])


def _label_map(n: int, present: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> pl.Series:
    """A Map(String, String) column from per-label presence masks, built as one Arrow MapArray."""
    rows, keys, items = [], [], []
    for k, has in present.items():
        idx = np.nonzero(has)[0]
        rows.append(idx)
        keys.append(np.full(len(idx), k, dtype=object))
        items.append(values[k][idx].astype(object))
    row = np.concatenate(rows)
    order = np.argsort(row, kind="stable")  # within a row, labels keep their order above
    counts = np.bincount(row, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    arr = pa.MapArray.from_arrays(
        pa.array(offsets),
        pa.array(np.concatenate(keys)[order], type=pa.string()),
        pa.array(np.concatenate(items)[order], type=pa.string()),
    )
    return pl.Series("labels", arr).cast(pl.Map(pl.String, pl.String))


def write_jsonl(events: pl.DataFrame, path: str) -> None:
    """Events as `klaxon replay` reads them: one JSON object a line, `ts` in RFC 3339."""
    events.select(
        ts=pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        event_id="event_id",
        kind=pl.col("kind").cast(pl.String),
        source="source",
        fingerprint="fingerprint",
        title="title",
        severity=pl.col("severity").cast(pl.String),
        status=pl.col("status").cast(pl.String),
        service="service",
        environment="environment",
        host="host",
        value="value",
        labels="labels",
    ).write_ndjson(path)


# ---------------------------------------------------------------- rules


def rules_text() -> str:
    """70 event rules, 20 window rules, 10 absence rules, 4 routes, a silence and an inhibit."""
    blocks: list[str] = []
    # Source alerts from monitoring tools, deduplicated by fingerprint (the shipped default),
    # and one per alert name with its own routing.
    blocks.append('rule source "{{ title }}"\n  when kind == "alert"\nend')
    alert_titles = [s[1] for s in SHAPES if s[2] == "alert"]
    for i, title in enumerate(alert_titles):
        extra = ""
        if i % 3 == 0:
            extra = "\n  for 2m"
        elif i % 3 == 1:
            extra = "\n  resolve after 10m"
        blocks.append(
            f'rule alert_{i} "{title} on {{{{ host }}}}"\n'
            f'  when kind == "alert" and title == "{title}" and severity >= "high"\n'
            f"  by host{extra}\n  team ops\n  notify ops_slack\nend"
        )
    # Per-service error alerts: a few services at a time.
    for i in range(20):
        svcs = ", ".join(f'"{SERVICES[(i * 3 + j) % N_SERVICES]}"' for j in range(3))
        extra = "\n  for 1m" if i % 4 == 0 else "\n  resolve after 15m" if i % 4 == 1 else ""
        blocks.append(
            f'rule svc_errors_{i} "Errors in {{{{ service }}}}: {{{{ labels.error_type }}}}"\n'
            f'  when title == "error" and service in [{svcs}] and environment == "prod"\n'
            f"  by service, labels.error_type{extra}\n  severity high\nend"
        )
    # Slow requests on specific paths, server errors, CPU and queue alarms from labels.
    for i in range(12):
        svc = SERVICES[(i * 7) % N_SERVICES]
        blocks.append(
            f'rule slow_{i} "Slow {{{{ labels.path }}}} on {{{{ service }}}}'
            f' ({{{{ latency_ms }}}} ms)"\n'
            f'  when title == "http_request" and service == "{svc}" and latency_ms > 2500\n'
            f"  by service, path\n  resolve after 5m\n  severity medium\nend"
        )
    for i in range(8):
        code = ["500", "502", "503"][i % 3]
        svc = SERVICES[(i * 11 + 1) % N_SERVICES]
        blocks.append(
            f'rule http_{code}_{i}\n  when title == "http_request" and status_code == {code}'
            f' and service == "{svc}" and path =~ "^/api/"\n'
            f"  by service\n  resolve after 2m\n  severity low\nend"
        )
    for i in range(4):
        blocks.append(
            f"rule cpu_{i}\n"
            f'  when title == "CPUHigh" and cpu > {90 + i * 2} and region == "{REGIONS[i % 3]}"\n'
            f"  by host\n  for 5m\n  resolve after 10m\nend"
        )
    blocks.append(
        'rule queue_backlog\n  when source == "cloudwatch" and queue_depth >= 4900\n'
        "  by service\n  resolve after 10m\nend"
    )
    # First appearances: new error types, new users deploying, prod deploys.
    blocks.append(
        'rule new_error "New error {{ labels.error_type }} in {{ service }}"\n'
        '  when title == "error" and startswith(labels.error_type, "Rare")\n'
        "  new within 1h\n  by service, labels.error_type\n  resolve after 30m\nend"
    )
    blocks.append(
        'rule new_deployer\n  when title == "deploy" and environment == "prod"\n'
        "  new within 1h\n  by user\n  resolve after 1h\nend"
    )
    for i in range(7):
        blocks.append(
            f"rule deploy_{i}\n"
            f'  when title == "deploy" and service == "{SERVICES[i * 5]}"\n'
            f"  by service\n  resolve after 30m\n  severity info\nend"
        )
    blocks.append(
        'rule login_from_attacker\n  when title == "auth.ok" and client_ip in ["203.0.113.5",'
        ' "198.51.100.9"]\n  by client_ip, user\nend'
    )
    for i in range(7):
        hold = "\n  for 30s" if i % 2 else "\n  resolve after 20m"
        blocks.append(
            f'rule oom_{i} "OOM on {{{{ host }}}}"\n'
            f'  when title == "error" and labels.error_type == "OOMKilled"'
            f' and region == "{REGIONS[i % 3]}" and host =~ "{i}$"\n'
            f"  by host{hold}\n  severity critical\nend"
        )
    n_event = sum(1 for b in blocks if b.startswith("rule"))
    assert n_event == 70, n_event

    # 20 window rules.
    windows = [
        ('title == "auth.failed"', "count() > 40 within 1m", "client_ip", "brute_force"),
        ('title == "auth.failed"', "count_distinct(user) >= 25 within 5m", "client_ip", "spray"),
        ('title == "auth.failed"', "rate() > 0.5 within 2m", "client_ip", "fail_rate"),
        ('title == "http_request"', "p95(latency_ms) > 1400 within 5m", "service", "p95_latency"),
        ('title == "http_request"', "p99(latency_ms) > 3000 within 5m", "service", "p99_latency"),
        ('title == "http_request"', "p50(latency_ms) > 500 within 5m", "service", "p50_latency"),
        ('title == "latency_sample"', "p90(value) > 700 within 10m", "service", "p90_samples"),
        ('title == "latency_sample"', "avg(error_rate) > 0.05 within 5m", "service", "error_rate"),
        ('title == "db_query"', "max(latency_ms) > 2500 within 1m", "host", "db_max"),
        ('title == "db_query"', "sum(latency_ms) > 20000 within 1m", "service", "db_sum"),
        (
            'title == "http_request" and status_code >= 500',
            "count() > 40 within 1m",
            "service",
            "http_5xx",
        ),
        (
            'title == "http_request" and status_code >= 500',
            "count() > 3 * prev(count()) + 40 within 5m",
            "service",
            "http_5xx_spike",
        ),
        (
            'title == "error"',
            "count() > 3 * prev(count()) + 150 within 10m",
            "service",
            "error_spike",
        ),
        (
            'title == "http_request"',
            "avg(latency_ms) > prev(avg(latency_ms)) * 2 within 5m",
            "service",
            "latency_jump",
        ),
        (
            'title == "error"',
            "count_distinct(labels.error_type) >= 7 within 10m",
            "service",
            "error_kinds",
        ),
        (
            'title == "http_request"',
            "count_distinct(status_code) >= 6 within 1m",
            "host",
            "unstable",
        ),
        ('title == "http_request"', "min(latency_ms) > 200 within 1m", "service", "min_latency"),
        ('kind == "alert"', "count() > 400 within 10m", "service", "alert_storm"),
        ('title == "heartbeat"', "count() > 40 within 1m", "host", "heartbeat_flood"),
        (
            'kind == "alert" and severity == "critical"',
            "count() >= 8 within 15m",
            "service",
            "critical_burst",
        ),
    ]
    for i, (when, cond, by, name) in enumerate(windows):
        hold = "\n  for 1m" if i % 5 == 4 else ""
        blocks.append(
            f'rule {name} "{name} {{{{ {by} }}}}: {{{{ value }}}}"\n  when {when}\n  {cond}\n'
            f"  by {by}{hold}\n  severity high\nend"
        )
    # 10 absence rules: heartbeats by host, per region and environment, and quiet services.
    for i in range(6):
        blocks.append(
            f'rule no_heartbeat_{i} "No heartbeat from {{{{ host }}}}"\n'
            f'  when title == "heartbeat" and region == "{REGIONS[i % 3]}"'
            f' and environment == "{ENVIRONMENTS[i % 2]}"\n'
            f"  absent for {10 + 2 * i}m\n  by host\n  severity high\nend"
        )
    for i in range(4):
        blocks.append(
            f"rule quiet_service_{i}\n"
            f'  when title == "http_request" and region == "{REGIONS[i % 3]}"\n'
            f"  absent for {2 + i}m\n  by service\nend"
        )
    blocks += [
        'route crit when severity == "critical" notify pager continue end',
        'route auth when rule in ["brute_force", "spray", "fail_rate", "login_from_attacker"]'
        " team security notify sec_slack end",
        'route prod when environment == "prod" team ops notify ops_slack end',
        "route rest when true team triage notify triage_email end",
        'silence nightly "nightly batch" when service == "svc-13" during daily 22:00-06:00'
        ' in "Europe/Berlin" end',
        'inhibit by_outage when rule != "source" while rule == "quiet_service_0" on service end',
    ]
    return "\n\n".join(blocks) + "\n"
