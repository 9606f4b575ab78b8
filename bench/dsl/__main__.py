"""`python -m bench.dsl`: how fast rules compile and how fast their conditions run.

(a) Parse, check and compile a generated file of 1,000 rules (goal: under 1 s).
(b) Evaluate the `when` of 100 generated rules over 1,000,000 generated events in one lazy
    Polars query, all 100 predicates at once, against a baseline measured in the same run: the
    same conditions as per-event Python functions, rules x events (goal: 50x faster).

Each phase runs in a fresh process, so its peak memory is its own: generating the events,
compiling, the Polars queries (reading the events from a Parquet file) and the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import polars as pl

from bench.dsl.phases import bench_baseline, bench_compile, bench_polars, generate_events


def in_child(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# ---------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    c, g, p, b = (results[k] for k in ("compile", "generate", "polars", "baseline"))
    ms = 1000
    scaled_s = b["sample_s"] * p["events"] / b["sample"]
    size = f"{c['blocks']} blocks, {c['lines']} lines, {c['bytes'] // 1024} KB"
    return "\n".join(
        [
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, Polars {pl.__version__}",
            "",
            f"(a) {c['rules']} rules ({size}); peak RSS {c['peak_rss_mb']:.0f} MB",
            f"    parse                                {c['parse_s'] * ms:8.0f} ms",
            f"    compile                              {c['compile_s'] * ms:8.0f} ms",
            f"    check_rules (parses and compiles)    {c['check_s'] * ms:8.0f} ms",
            f"    load_rules: parse + check + compile  {c['load_rules_s'] * ms:8.0f} ms"
            "   goal < 1000 ms",
            "",
            f"(b) {p['predicates']} predicates over {p['events']:,} events "
            f"({g['frame_mb']:.0f} MB frame, {p['labels_extracted']} labels extracted)",
            f"    extract labels + evaluate, 1 query   {p['one_query_s'] * ms:8.0f} ms"
            f"   {p['events'] / p['one_query_s'] / 1e6:5.1f} M events/s"
            f"   {scaled_s / p['one_query_s']:5.0f} x baseline",
            f"      of which label extraction alone    {p['extract_s'] * ms:8.0f} ms",
            f"    evaluate on extracted label columns  {p['extracted_columns_s'] * ms:8.0f} ms"
            f"   {p['events'] / p['extracted_columns_s'] / 1e6:5.1f} M events/s"
            f"   {scaled_s / p['extracted_columns_s']:5.0f} x baseline",
            f"    evaluate reading the Map each time   {p['map_per_predicate_s'] * ms:8.0f} ms",
            f"    Python baseline, {b['sample']:,} events      {b['sample_s'] * ms:8.0f} ms"
            f"   {b['sample'] / b['sample_s'] / 1e3:5.1f} k events/s",
            f"    Python baseline scaled to {p['events']:,}  {scaled_s * ms:8.0f} ms"
            "                goal: 50 x",
            f"    memory: Polars process {p['rss_loaded_mb']:.0f} MB with the events loaded,"
            f" peak {p['peak_rss_one_query_mb']:.0f} MB in the one-query run"
            f" ({p['peak_rss_mb']:.0f} MB after all variants);"
            f" baseline process {b['rss_loaded_mb']:.0f} MB with {b['sample']:,} events as dicts,"
            f" peak {b['peak_rss_mb']:.0f} MB",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dsl", description=__doc__)
    parser.add_argument("--rules", type=int, default=1000, help="rules in the compiled file")
    parser.add_argument("--predicates", type=int, default=100, help="conditions evaluated")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=100_000, help="events the baseline runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best counts")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        events = str(Path(tmp) / "events.parquet")
        results = {
            "compile": in_child(bench_compile, args.rules, args.repeat),
            "generate": in_child(generate_events, events, args.events),
            "polars": in_child(bench_polars, events, args.predicates, args.sample, args.repeat),
            "baseline": in_child(bench_baseline, events, args.predicates, args.sample),
        }
    polars_counts = results["polars"].pop("sample_counts")
    if polars_counts != results["baseline"].pop("counts"):
        print("the baseline and Polars disagree on the sample", file=sys.stderr)
        return 2
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    p, b = results["polars"], results["baseline"]
    ratio = b["sample_s"] * p["events"] / b["sample"] / p["one_query_s"]
    return 0 if results["compile"]["load_rules_s"] < 1 and ratio >= 50 else 1


if __name__ == "__main__":
    sys.exit(main())
