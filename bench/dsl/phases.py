"""The benchmark's phases; each runs in a fresh process, so its peak memory is its own."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from typing import Any

import polars as pl

from bench.dsl.baseline import predicates
from bench.dsl.generate import events_frame, rules_text
from dsl import ast, check_rules, compile_rules, load_rules, parse


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of `repeat` runs, in seconds, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def rss_mb() -> float:
    """Resident memory now (Linux /proc), in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """The most resident memory this process has had, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


def bench_compile(count: int, repeat: int) -> dict[str, Any]:
    text = rules_text(count)
    parse_s, tree = timed(lambda: parse(text, "bench.klx"), repeat)
    check_s, found = timed(lambda: check_rules(text, "bench.klx"), repeat)
    assert found == [], found[:3]
    compile_s, compiled = timed(lambda: compile_rules(tree), repeat)
    load_s, _ = timed(lambda: load_rules(text, "bench.klx"), repeat)
    return {
        "rules": len(compiled.rules),
        "blocks": len(tree.blocks),
        "lines": text.count("\n"),
        "bytes": len(text.encode()),
        "parse_s": parse_s,
        "check_s": check_s,
        "compile_s": compile_s,
        "load_rules_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def generate_events(path: str, count: int) -> dict[str, Any]:
    generate_s, frame = timed(lambda: events_frame(count), 1)
    frame.write_parquet(path)
    return {"generate_s": generate_s, "frame_mb": frame.estimated_size() / 1e6}


def label_column(key: str) -> pl.Expr:
    return pl.col(f"label:{key}")


def conditions(count: int) -> tuple[ast.RulesFile, list[ast.Expr]]:
    tree = parse(rules_text(count, seed=2), "predicates.klx")
    whens = [b.when for b in tree.blocks if isinstance(b, ast.RuleBlock)][:count]
    return tree, whens


def bench_polars(path: str, count: int, sample: int, repeat: int) -> dict[str, Any]:
    tree, _ = conditions(count)
    extracted_rules = compile_rules(tree, event_label=label_column).rules[:count]
    map_rules = compile_rules(tree).rules[:count]
    keys = sorted({k for r in extracted_rules for k in labels_read(r.ast.when)})
    extract = [pl.col("labels").map.get(k).alias(f"label:{k}") for k in keys]
    on_columns = [r.when.alias(r.rule_id) for r in extracted_rules]
    on_map = [r.when.alias(r.rule_id) for r in map_rules]

    frame = pl.read_parquet(path)
    rss_loaded = rss_mb()
    one_query_s, matched = timed(
        lambda: frame.lazy().with_columns(extract).select(on_columns).collect(), repeat
    )
    peak_one_query = peak_rss_mb()
    extract_s, extracted = timed(lambda: frame.lazy().with_columns(extract).collect(), repeat)
    columns_s, _ = timed(lambda: extracted.lazy().select(on_columns).collect(), repeat)
    map_s, by_map = timed(lambda: frame.lazy().select(on_map).collect(), repeat)
    assert by_map.equals(matched), "reading labels from the map gave other matches"
    return {
        "predicates": len(on_columns),
        "events": frame.height,
        "labels_extracted": len(keys),
        "one_query_s": one_query_s,
        "extract_s": extract_s,
        "extracted_columns_s": columns_s,
        "map_per_predicate_s": map_s,
        "matches": int(sum(matched.sum().row(0))),
        "sample_counts": list(matched.head(sample).sum().row(0)),
        "rss_loaded_mb": rss_loaded,
        "peak_rss_one_query_mb": peak_one_query,
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_baseline(path: str, count: int, sample: int) -> dict[str, Any]:
    _, whens = conditions(count)
    functions = predicates(whens)
    # Untimed: a Python engine would hold its events as dicts already.
    rows = pl.read_parquet(path, n_rows=sample).to_dicts()
    rss_loaded = rss_mb()

    def run() -> list[int]:
        counts = [0] * len(functions)
        for event in rows:
            for i, fn in enumerate(functions):
                if fn(event):
                    counts[i] += 1
        return counts

    baseline_s, counts = timed(run, 1)
    return {
        "sample": len(rows),
        "sample_s": baseline_s,
        "counts": counts,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
    }


def labels_read(node: Any) -> set[str]:
    """The label keys a condition reads (Name and Label nodes), found without compiling."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Label):
            found.add(item.key)
        elif isinstance(item, ast.Name):
            found.add(item.name)
        elif isinstance(item, tuple):
            stack.extend(item)
        elif hasattr(item, "__dataclass_fields__") and not isinstance(item, ast.Span):
            stack.extend(getattr(item, name) for name in item.__dataclass_fields__)
    return found
