"""Health, Prometheus metrics and the live stream of alert changes (server-sent events)."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from sqlalchemy import func, select

from engine.api.deps import permission
from engine.auth.principal import Principal
from engine.store.db import Database, orm
from engine.store.models import Alert, AlertHistory, InboxItem, Setting
from engine.worker import STATS_KEY

router = APIRouter(tags=["operations"])


class Metrics:
    """Counters and histograms kept by the API process, rendered in Prometheus text format."""

    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.histograms: dict[str, list[float]] = {}

    def inc(self, name: str, labels: dict[str, str] | None = None, n: float = 1) -> None:
        with self._lock:
            self.counters[(name, tuple(sorted((labels or {}).items())))] += n

    def observe(self, name: str, seconds: float) -> None:
        with self._lock:
            h = self.histograms.setdefault(name, [0.0] * (len(self.BUCKETS) + 2))
            for i, bound in enumerate(self.BUCKETS):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += 1  # count
            h[-1] += seconds  # sum

    def render(self) -> list[str]:
        lines: list[str] = []
        with self._lock:
            seen: set[str] = set()
            for (name, labels), value in sorted(self.counters.items()):
                if name not in seen:
                    lines.append(f"# TYPE {name} counter")
                    seen.add(name)
                lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels)
                lines.append(f"{name}{{{lab}}} {value:g}" if lab else f"{name} {value:g}")
            for name, h in sorted(self.histograms.items()):
                lines.append(f"# TYPE {name} histogram")
                for bound, count in zip(self.BUCKETS, h, strict=False):
                    lines.append(f'{name}_bucket{{le="{bound}"}} {count:g}')
                lines.append(f'{name}_bucket{{le="+Inf"}} {h[-2]:g}')
                lines.append(f"{name}_count {h[-2]:g}")
                lines.append(f"{name}_sum {h[-1]:g}")
        return lines


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@router.get("/health/live", summary="The process is up")
def live() -> dict[str, Any]:
    return {"ok": True}


@router.get("/health/ready", summary="The store and the queue are reachable")
def ready(request: Request) -> JSONResponse:
    db: Database = request.app.state.db
    checks = {"store": db.ping()}
    try:
        with db.read() as conn:
            conn.execute(select(func.count()).select_from(InboxItem)).scalar_one()
        checks["queue"] = True
    except Exception:
        checks["queue"] = False
    ok = all(checks.values())
    return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics (a key with the read scope, sent as a bearer token)",
)
def metrics(
    request: Request, actor: Annotated[Principal, Depends(permission("analytics.read"))]
) -> PlainTextResponse:
    db: Database = request.app.state.db
    lines = list(request.app.state.metrics.render())
    with db.read() as conn:
        depth = conn.execute(select(func.count()).select_from(InboxItem)).scalar_one()
        stats = (
            conn.execute(select(Setting.value).where(Setting.key == STATS_KEY)).scalar_one_or_none()
            or {}
        )
        open_alerts = conn.execute(
            select(Alert.severity, func.count()).where(Alert.is_open).group_by(Alert.severity)
        ).all()
    lines += ["# TYPE klaxon_queue_depth gauge", f"klaxon_queue_depth {depth}"]
    lines += ["# TYPE klaxon_open_alerts gauge"] + [
        f'klaxon_open_alerts{{severity="{s}"}} {n}' for s, n in open_alerts
    ]
    for name, key, kind in (
        ("klaxon_worker_batches_total", "batches", "counter"),
        ("klaxon_worker_events_total", "events", "counter"),
        ("klaxon_worker_transitions_total", "transitions", "counter"),
        ("klaxon_worker_batch_seconds_total", "total_batch_seconds", "counter"),
        ("klaxon_worker_last_batch_seconds", "last_batch_seconds", "gauge"),
        ("klaxon_rule_evaluation_seconds_total", "rule_eval_seconds", "counter"),
        ("klaxon_late_events_total", "late_events", "counter"),
    ):
        if key in stats:
            lines += [f"# TYPE {name} {kind}", f"{name} {float(stats[key]):g}"]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


@router.get("/api/v1/stream", summary="Live alert changes as server-sent events")
async def stream(
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.read"))],
    after: Annotated[int | None, Query(description="resume after this history id")] = None,
) -> StreamingResponse:
    """Each alert change (fired, acknowledged, resolved, notes, ...) as an `alert` event whose
    data is the history entry with the alert's id; a comment line every 15 s keeps it open."""
    db: Database = request.app.state.db

    def newest() -> int:
        with db.read() as conn:
            return int(conn.execute(select(func.max(AlertHistory.id))).scalar_one() or 0)

    def since(last: int) -> list[dict[str, Any]]:
        with db.read() as conn:
            rows = (
                orm(conn)
                .execute(
                    select(AlertHistory, Alert.title, Alert.severity, Alert.status)
                    .join(Alert, Alert.id == AlertHistory.alert_id)
                    .where(AlertHistory.id > last)
                    .order_by(AlertHistory.id)
                    .limit(500)
                )
                .all()
            )
        return [
            {
                "id": h.id,
                "alert_id": h.alert_id,
                "at": h.at.isoformat(),
                "action": h.action,
                "actor": h.actor,
                "to_status": h.to_status,
                "title": title,
                "severity": severity,
                "status": status,
            }
            for h, title, severity, status in rows
        ]

    async def events() -> AsyncIterator[bytes]:
        last = after if after is not None else await asyncio.to_thread(newest)
        idle = 0.0
        yield b": connected\n\n"
        while not await request.is_disconnected():
            batch = await asyncio.to_thread(since, last)
            for item in batch:
                last = item["id"]
                yield b"id: %d\nevent: alert\ndata: %s\n\n" % (item["id"], orjson.dumps(item))
            if not batch:
                await asyncio.sleep(0.5)
                idle += 0.5
                if idle >= 15:
                    idle = 0.0
                    yield b": keep-alive\n\n"
            if request.app.state.closing:
                break

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
