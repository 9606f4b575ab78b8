"""Silence preview: what a proposed silence or maintenance window would have muted in the past.

The current rules, the silences already made through the API and the proposed silence run over
the period's stored events (as in a backtest). An alert the proposed silence mutes is counted;
if nothing else muted it, its pages are the ones the silence would have saved. The silence
applies as the worker would apply it: its matcher over alerts, within [from, until) and
`during` (DSL.md §5).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from engine.analytics.backtest import (
    Progress,
    api_silences,
    check_period,
    count_events,
    current_rules,
    expand_pages,
    read_events,
    with_silences,
)
from engine.analytics.frames import records
from engine.analytics.warehouse import Warehouse
from engine.pipeline.engine import Engine, compile_for_engine
from engine.store.db import Database
from engine.store.models import Silence
from engine.store.rules import silence_block

PREVIEW_ID = "proposed_silence"
SAMPLE = 100


@dataclass(frozen=True)
class ProposedSilence:
    matcher: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    during: str | None = None
    comment: str = ""

    def block(self) -> str:
        probe = Silence(
            id=0,
            matcher=self.matcher,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            during=self.during,
            comment=self.comment or "proposed silence",
        )
        text = silence_block(probe)
        return text.replace("silence api_silence_0 ", f"silence {PREVIEW_ID} ", 1)


def preview_silence(
    db: Database,
    wh: Warehouse,
    silence: ProposedSilence,
    start: datetime,
    end: datetime,
    *,
    default_rules: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Alerts the silence would have muted (by rule, service, severity); pages it would save."""
    check_period(start, end)
    started = time.perf_counter()
    with db.read() as conn:
        text = with_silences(current_rules(conn, default_rules), api_silences(conn))
    engine = Engine(compile_for_engine(text.rstrip() + "\n\n" + silence.block() + "\n", "silence"))
    total = count_events(wh, start, end)
    muted: list[pl.DataFrame] = []
    done = 0
    for batch in read_events(wh, start, end):
        muted.append(_muted(engine.feed(batch)))
        done += batch.height
        if progress:
            progress(done, total)
    muted.append(_muted(engine.advance(end)))
    frame = pl.concat(muted)
    only = frame.filter(pl.col("muted_by").list.len() == 1)
    with db.read() as conn:
        saved = expand_pages(
            conn,
            [only.filter(pl.col("notify").list.len() > 0).select("rule", "team", "at", "notify")],
        )
    return {
        "silence": silence.block(),
        "from": _iso(start),
        "to": _iso(end),
        "events": done,
        "seconds": round(time.perf_counter() - started, 3),
        "alerts": frame.height,
        "already_muted": frame.height - only.height,
        "pages_saved": sum(saved.by_channel.values()),
        "by_rule": _counts(frame, "rule"),
        "by_service": _counts(frame, "service"),
        "by_severity": _counts(frame.with_columns(pl.col("severity").cast(pl.String)), "severity"),
        "channels": [{"channel": c, "pages": n} for c, n in saved.by_channel.most_common()],
        "people": [{"person": p, "pages": n} for p, n in saved.by_person.most_common()],
        "sample": records(
            frame.head(SAMPLE).select(
                "at",
                "rule",
                "key",
                "title",
                pl.col("severity").cast(pl.String),
                "service",
                "muted_by",
            )
        ),
    }


def _muted(transitions: pl.DataFrame) -> pl.DataFrame:
    """Fired alerts the proposed silence mutes."""
    return transitions.filter(
        (pl.col("transition") == "fired") & pl.col("muted_by").list.contains(PREVIEW_ID)
    )


def _counts(frame: pl.DataFrame, column: str) -> list[dict[str, Any]]:
    counter = Counter(frame[column].to_list())
    return [
        {column: k, "alerts": n}
        for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]


def _iso(value: datetime) -> str:
    from engine.analytics.frames import value as to_json

    out: str = to_json(value)
    return out
