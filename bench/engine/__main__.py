"""`python -m bench.engine`: the engine over a million events and 100 rules, against a baseline.

(a) The Engine API in batches (default 50,000): events/s, per-batch latency, peak RSS and
    Engine.timings (seconds per step).
(b) `klaxon replay` of the same events as a JSONL file: wall time and peak RSS.
(c) A per-event Python evaluator of the same rules (bench/engine/baseline.py), timed on a
    sample and scaled; on a smaller stream it must fire and resolve exactly what the engine
    does, rule by rule, so the comparison is fair.
(d) Live: after part of the stream, the latency of small batches and of a clock tick with no
    events, as the worker feeds them between bursts.
(e) The floor: the least work we found that any Polars evaluation of these rules must do (all
    events in one frame, no state, a rolling count for every window rule), so a bound on what
    Polars on the hot path can reach on this machine.

Goals: >= 1,000,000 events/s through the engine, peak memory < 1 GB, >= 50x the baseline.
Every phase runs in a fresh process, so each peak RSS is that phase's own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import polars as pl

from bench.engine import phases


def in_child(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return (
        f"{model}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"Polars {pl.__version__}, load average {os.getloadavg()[0]:.1f}"
    )


def report(r: dict[str, Any]) -> str:
    g, e, b, c = r["generate"], r["engine"], r["baseline"], r["check"]
    scaled = b["sample_s"] * g["events"] / b["sample"]
    ratio = scaled / e["total_s"]
    timings = sorted(e["timings"].items(), key=lambda kv: -kv[1])
    steps = ", ".join(f"{k} {v:.2f} s ({v / e['total_s']:.0%})" for k, v in timings)
    lines = [
        f"machine: {r['machine']}",
        f"workload: {g['events']:,} events over {g['span_s'] / 60:.0f} min of event time "
        f"({g['frame_mb']:.0f} MB frame, {g['jsonl_mb']:.0f} MB JSONL), {g['rules']} rules; "
        f"generated in {g['generate_s']:.1f} s",
        "",
        f"(a) Engine API, batches of {r['batch_size']:,}",
        f"    total {e['total_s']:.1f} s = {e['events_per_s']:,.0f} events/s   goal >= 1,000,000",
        f"    per batch p50 {e['batch_p50_s']:.2f} s, p99 {e['batch_p99_s']:.2f} s, "
        f"max {e['batch_max_s']:.2f} s ({e['batches']} batches); advance {e['advance_s']:.2f} s; "
        f"compile {e['compile_s']:.2f} s",
        f"    peak RSS {e['peak_rss_mb']:.0f} MB ({e['rss_loaded_mb']:.0f} MB with the events "
        "loaded)   goal < 1024 MB",
        f"    timings: {steps}",
        f"    transitions {e['transitions']}, late events {e['late_events']:,}, "
        f"state {e['state_bytes'] / 2**20:.1f} MB",
    ]
    if "replay" in r:
        p = r["replay"]
        lines += [
            "",
            "(b) klaxon replay of the JSONL file",
            f"    {p['command']}",
            f"    wall {p['wall_s']:.1f} s = {g['events'] / p['wall_s']:,.0f} events/s, "
            f"peak RSS {p['peak_rss_mb']:.0f} MB, {p['lines']:,} lines out",
        ]
    lines += [
        "",
        f"(c) per-event Python baseline on the first {b['sample']:,} events",
        f"    {b['sample_s']:.1f} s = {b['events_per_s']:,.0f} events/s; scaled to "
        f"{g['events']:,}: {scaled:.1f} s; peak RSS {b['peak_rss_mb']:.0f} MB",
        f"    engine / baseline: {ratio:.2f}x   goal >= 50x",
        f"    agreement on the first {c['events']:,} events: {c['transitions']} fires and "
        f"resolves over {c['rules_alerting']} rules, "
        + ("identical per rule" if not c["diffs"] else f"DIFFERENT: {c['diffs']}"),
    ]
    if "live" in r:
        lv = r["live"]
        sizes = ", ".join(f"{int(k):,}: {v * 1000:.0f} ms" for k, v in lv["batch_p50_s"].items())
        lines += [
            "",
            f"(d) live, after {lv['warm_events']:,} events "
            f"({lv['state_rows']['window_events']:,} window rows carried)",
            f"    batch p50 by size: {sizes}; a clock tick with no events: "
            f"{lv['tick_p50_s'] * 1000:.0f} ms",
        ]
    if "floor" in r:
        f = r["floor"]
        steps = ", ".join(f"{k} {v:.2f} s" for k, v in f["parts_s"].items())
        lines += [
            "",
            "(e) the floor: the least any Polars evaluation of these rules does, all at once",
            f"    {steps}; total {f['total_s']:.2f} s = {f['events_per_s']:,.0f} events/s at most",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument(
        "--baseline-sample", type=int, default=100_000, help="events the baseline runs"
    )
    parser.add_argument(
        "--check-events", type=int, default=20_000, help="events both run to compare"
    )
    parser.add_argument(
        "--late-share", type=float, default=0.02, help="share of events arriving late"
    )
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument(
        "--live-after", type=int, default=200_000, help="events fed before (d) measures"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run to try the benchmark: 50,000 events, baseline and check on 10,000",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 50_000)
        args.baseline_sample = min(args.baseline_sample, 10_000)
        args.check_events = min(args.check_events, 10_000)
        args.batch_size = min(args.batch_size, 25_000)

    results: dict[str, Any] = {"machine": machine(), "batch_size": args.batch_size}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as work:

        def phase(name: str, fn: Callable[..., dict[str, Any]], *a: Any) -> None:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results[name] = in_child(fn, *a)
            if args.json:  # after every phase, so a long run stopped half-way still tells
                with open(args.json, "w") as f:
                    json.dump(results, f, indent=2)

        phase("generate", phases.generate, args.events, work, args.late_share)
        phase("check", phases.check, work, min(args.check_events, args.events), args.batch_size)
        phase("baseline", phases.baseline, work, min(args.baseline_sample, args.events))
        phase("engine", phases.engine, work, args.batch_size)
        if not args.skip_replay:
            phase("replay", phases.replay, work, args.batch_size)
        phase("live", phases.live, work, args.live_after, args.batch_size)
        phase("floor", phases.floor, work)
    results["bench_s"] = time.perf_counter() - started
    print(report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    e = results["engine"]
    scaled = (
        results["baseline"]["sample_s"]
        * results["generate"]["events"]
        / results["baseline"]["sample"]
    )
    met = (
        e["events_per_s"] >= 1_000_000
        and e["peak_rss_mb"] < 1024
        and scaled / e["total_s"] >= 50
        and not results["check"]["diffs"]
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
