"""Run Klaxon's benchmarks one after another: `make bench` or `python -m bench [NAME...]`.

Each benchmark is its own module (`python -m bench.engine --help` for its options) and prints
its numbers with the baseline it is compared against in the same run; BENCHMARKS.md records
the results and the machine they were measured on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

SUITES = {
    "dsl": "rule compilation and predicate evaluation against a row-by-row evaluator",
    "engine": "1M events through 100 rules against a per-event Python evaluator; klaxon replay",
    "ingest": "HTTP to stored alert on SQLite and PostgreSQL: throughput and latency",
    "notify": "notification planning and delivery to a local HTTP receiver",
    "analytics": "dashboard queries at 1M and 10M alerts, backtest and export throughput",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(SUITES))
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SUITES]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    failed = []
    for name in args.names or list(SUITES):
        print(f"\n=== bench/{name}: {SUITES[name]}", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False)
        print(
            f"=== bench/{name}: exit {done.returncode} after {time.perf_counter() - started:.0f} s"
        )
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
