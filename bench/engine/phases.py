"""The engine benchmark's phases; each runs in a fresh process so its peak RSS is its own.

Peak RSS is `ru_maxrss` of the process (tracemalloc would not see Polars' Rust allocations).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from bench.engine.generate import generate_events, rules_text, write_jsonl


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def generate(n: int, workdir: str, late_share: float) -> dict[str, Any]:
    """Events as Parquet (for the API phases) and JSONL (for `klaxon replay`), and the rules."""
    t = time.perf_counter()
    events = generate_events(n, late_share=late_share)
    gen_s = time.perf_counter() - t
    work = Path(workdir)
    events.write_parquet(work / "events.parquet")
    write_jsonl(events, str(work / "events.jsonl"))
    text = rules_text()
    (work / "rules.klx").write_text(text)
    return {
        "events": events.height,
        "generate_s": gen_s,
        "frame_mb": events.estimated_size() / 2**20,
        "jsonl_mb": (work / "events.jsonl").stat().st_size / 2**20,
        "span_s": (events["ts"].max() - events["ts"].min()).total_seconds(),  # type: ignore[operator]
        "rules": sum(1 for line in text.splitlines() if line.startswith("rule ")),
        "blocks": len(text.strip().split("\n\n")),
    }


def engine(workdir: str, batch_size: int) -> dict[str, Any]:
    """Engine.feed in batches, then advance to the last event: throughput, latency, timings."""
    from engine.pipeline.engine import Engine, compile_for_engine

    work = Path(workdir)
    events = pl.read_parquet(work / "events.parquet")
    loaded_mb = _rss_mb()
    t = time.perf_counter()
    eng = Engine(compile_for_engine((work / "rules.klx").read_text()))
    compile_s = time.perf_counter() - t
    latencies = []
    transitions = Counter[str]()
    start = time.perf_counter()
    for i in range(0, events.height, batch_size):
        t = time.perf_counter()
        out = eng.feed(events.slice(i, batch_size))
        latencies.append(time.perf_counter() - t)
        transitions.update(out["transition"].cast(pl.String).to_list())
        print(
            f"\r    engine: {i + batch_size:,} events, {time.perf_counter() - start:.0f} s",
            end="",
            file=sys.stderr,
            flush=True,
        )
    print(file=sys.stderr)
    t = time.perf_counter()
    out = eng.advance(events["ts"].max())  # type: ignore[arg-type]
    advance_s = time.perf_counter() - t
    total = time.perf_counter() - start
    transitions.update(out["transition"].cast(pl.String).to_list())
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "compile_s": compile_s,
        "total_s": total,
        "advance_s": advance_s,
        "events_per_s": events.height / total,
        "batches": len(latencies),
        "batch_p50_s": pct(0.5),
        "batch_p99_s": pct(0.99),
        "batch_max_s": ordered[-1],
        "timings": dict(eng.timings),
        "transitions": dict(transitions),
        "late_events": eng.state.late_events,
        "state_rows": eng.state.size,
        "state_bytes": len(eng.state.to_bytes()),
        "rss_loaded_mb": loaded_mb,
        "peak_rss_mb": _peak_rss_mb(),
    }


def live(workdir: str, warm: int, batch_size: int) -> dict[str, Any]:
    """What a worker sees between bursts: after `warm` events fed in batches, the latency of
    small batches and of a clock tick with no events (the worker's idle wait, 200 ms)."""
    from engine.pipeline.engine import Engine, compile_for_engine

    work = Path(workdir)
    events = pl.read_parquet(work / "events.parquet")
    eng = Engine(compile_for_engine((work / "rules.klx").read_text()))
    sizes = ((1, 30), (100, 30), (1000, 20))
    # Every measured batch is full: a short stream warms up on less.
    warm = max(0, min(warm, events.height - sum(size * reps for size, reps in sizes)))
    for i in range(0, warm, batch_size):
        eng.feed(events.slice(i, min(batch_size, warm - i)))
    state_rows = dict(eng.state.size)
    at = warm
    batches: dict[str, float] = {}
    for size, reps in sizes:
        took = []
        for _ in range(reps):
            t = time.perf_counter()
            eng.feed(events.slice(at, size))
            took.append(time.perf_counter() - t)
            at += size
        batches[str(size)] = sorted(took)[len(took) // 2]
    now = events["ts"][at - 1]
    ticks = []
    for k in range(1, 21):
        t = time.perf_counter()
        eng.advance(now + timedelta(milliseconds=200 * k))
        ticks.append(time.perf_counter() - t)
    return {
        "warm_events": warm,
        "state_rows": state_rows,
        "batch_p50_s": batches,
        "tick_p50_s": sorted(ticks)[len(ticks) // 2],
    }


def replay(workdir: str, batch_size: int) -> dict[str, Any]:
    """`klaxon replay` over the JSONL file, as a subprocess: wall time and its peak RSS."""
    work = Path(workdir)
    klaxon = Path(sys.executable).with_name("klaxon")
    cmd = [str(klaxon)] if klaxon.exists() else [sys.executable, "-m", "engine.cli"]
    cmd += [
        "replay",
        "--rules",
        str(work / "rules.klx"),
        "--events",
        str(work / "events.jsonl"),
        "--batch-size",
        str(batch_size),
    ]
    t = time.perf_counter()
    with open(work / "transitions.jsonl", "wb") as out:
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"klaxon replay failed: {p.stderr.decode()[-2000:]}")
    with open(work / "transitions.jsonl", "rb") as f:
        lines = sum(1 for _ in f)
    return {
        "command": " ".join(cmd[-8:]),
        "wall_s": wall,
        "lines": lines,
        "peak_rss_mb": _peak_rss_mb(resource.RUSAGE_CHILDREN),  # the only child of this process
    }


def _as_dicts(events: pl.DataFrame) -> list[dict[str, Any]]:
    return events.with_columns(
        ts=pl.col("ts").dt.epoch("us"),
        kind=pl.col("kind").cast(pl.String),
        severity=pl.col("severity").cast(pl.String),
        status=pl.col("status").cast(pl.String),
    ).rows(named=True)


def baseline(workdir: str, sample: int) -> dict[str, Any]:
    """The per-event Python evaluator over the first `sample` events."""
    from bench.engine.baseline import Baseline

    work = Path(workdir)
    events = pl.read_parquet(work / "events.parquet").head(sample)
    rows = _as_dicts(events)
    until = int(events["ts"].dt.epoch("us").max())  # type: ignore[arg-type]
    del events
    loaded_mb = _rss_mb()
    base = Baseline((work / "rules.klx").read_text())
    t = time.perf_counter()
    out = base.feed(rows)
    out += base.advance(until)
    elapsed = time.perf_counter() - t
    return {
        "sample": len(rows),
        "sample_s": elapsed,
        "events_per_s": len(rows) / elapsed,
        "transitions": len(out),
        "rss_loaded_mb": loaded_mb,
        "peak_rss_mb": _peak_rss_mb(),
    }


def check(workdir: str, n: int, batch_size: int) -> dict[str, Any]:
    """Engine and baseline over the first `n` events: fired and resolved counts per rule."""
    from bench.engine.baseline import Baseline
    from engine.pipeline.engine import Engine, compile_for_engine

    work = Path(workdir)
    text = (work / "rules.klx").read_text()
    events = pl.read_parquet(work / "events.parquet").head(n)
    eng = Engine(compile_for_engine(text))
    outs = [eng.feed(events.slice(i, batch_size)) for i in range(0, events.height, batch_size)]
    outs.append(eng.advance(events["ts"].max()))  # type: ignore[arg-type]
    out = pl.concat(outs).filter(pl.col("transition") != "repeated")
    got = Counter(zip(out["rule"], out["transition"].cast(pl.String), strict=True))
    base = Baseline(text)
    until = int(events["ts"].dt.epoch("us").max())  # type: ignore[arg-type]
    trans = base.feed(_as_dicts(events)) + base.advance(until)
    want = Counter((rule, kind) for _, rule, _, kind in trans)
    diffs = {
        f"{rule} {kind}": [got.get((rule, kind), 0), want.get((rule, kind), 0)]
        for rule, kind in sorted(set(got) | set(want))
        if got.get((rule, kind), 0) != want.get((rule, kind), 0)
    }
    return {
        "events": events.height,
        "transitions": sum(got.values()),
        "rules_alerting": len({r for r, _ in got}),
        "diffs": diffs,
        "late_events": [eng.state.late_events, base.late_events],
    }


def floor(workdir: str) -> dict[str, Any]:
    """The least work we found that any Polars evaluation of these rules must do, given every
    event in one frame: label columns, each rule's `when`, a key per matching event (hashed,
    not the JSON the engine writes), one rolling count per window rule over its matching
    events on a single (key, time) axis (the cheapest rolling aggregate: the rules' own are
    dearer), and each absence rule's last arrival per key. No state, batches, expiry instants,
    `for`, transitions or alerts: the engine does all this and more, so no Polars evaluation
    of these rules we know of can be faster on this machine."""
    from engine.pipeline.engine import compile_for_engine
    from engine.pipeline.matching import extract_labels, match_rules

    work = Path(workdir)
    events = pl.read_parquet(work / "events.parquet")
    compiled = compile_for_engine((work / "rules.klx").read_text())
    rules = compiled.rules
    parts: dict[str, float] = {}
    start = lap = time.perf_counter()

    def took(name: str) -> None:
        nonlocal lap
        parts[name], lap = time.perf_counter() - lap, time.perf_counter()

    ev = extract_labels(events, compiled.event_labels).with_columns(t=pl.col("ts").dt.epoch("us"))
    took("labels")
    matched = match_rules(ev, rules).rows
    took("match")
    by_fields: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(rules):
        by_fields.setdefault(r.key_fields, []).append(i)
    keyed = []
    for idxs in by_fields.values():
        pairs = matched.filter(pl.col("rule_idx").is_in(idxs))
        rows = pairs["row"].unique().sort()
        exprs = rules[idxs[0]].key_exprs
        reads = sorted({c for e in exprs for c in e.meta.root_names()}) or ["t"]
        keys = ev.select(reads)[rows].select(pl.struct(*exprs).hash().alias("key"))
        keyed.append(pairs.join(pl.DataFrame({"row": rows, "key": keys["key"]}), on="row"))
    by_rule = pl.concat(keyed).partition_by("rule_idx", as_dict=True)
    took("keys")
    for (i,), pairs in by_rule.items():
        window = rules[i].window
        if window is not None:
            width = window.duration_ms * 1000
            # each key's times, one key after another: (key rank) * (span + width) + time
            span = pl.col("t").max() - pl.col("t").min() + width
            axis = pl.col("key").rle_id().cast(pl.Int64) * span + pl.col("t") - pl.col("t").min()
            arrivals = ev.select("t")[pairs["row"]].with_columns(key=pairs["key"], one=1)
            arrivals.sort("key", "t").select(pl.col("one").rolling_sum_by(axis, f"{width}i"))
    took("windows")
    for (i,), pairs in by_rule.items():
        if rules[i].absent_ms is not None:
            pairs.group_by("key").agg(pl.col("row").max())
    took("absence")
    total = time.perf_counter() - start
    return {"parts_s": parts, "total_s": total, "events_per_s": events.height / total}
