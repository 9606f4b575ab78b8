"""Ingest: webhooks per source, raw events, manual alerts. A 2xx means the events are durable."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import polars as pl
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from engine.api.deps import permission
from engine.api.errors import ApiError
from engine.auth.principal import Principal
from engine.normalize import normalize
from engine.schema import EventValidationError, identity_hash, records_from_dicts
from engine.store.db import Database
from engine.store.events import insert_events, new_event_ids

router = APIRouter(prefix="/api/v1", tags=["ingest"])


@dataclass
class _Job:
    records: list[dict[str, Any]]
    done: asyncio.Future[int]


@dataclass
class IngestWriter:
    """One writer for every request: concurrent requests share a transaction.

    Each request waits for the commit that holds its events, so its 2xx still means durable,
    while the store sees one write of many rows instead of many writes of a few (STACK.md).
    """

    db: Database
    max_requests: int = 256
    _queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def write(self, records: list[dict[str, Any]]) -> int:
        """Store and queue store-ready records; returns how many were new (not redeliveries)."""
        if self._task is None or self._task.done():
            self.start()  # an app served without its lifespan (some test clients) still writes
        job = _Job(records, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.done

    async def _run(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self.max_requests and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            try:
                counts = await asyncio.to_thread(self._store, [j.records for j in jobs])
            except Exception as err:
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(err)
                continue
            for job, n in zip(jobs, counts, strict=True):
                if not job.done.done():
                    job.done.set_result(n)

    def _store(self, batches: list[list[dict[str, Any]]]) -> list[int]:
        """One insert for every waiting request; each learns how many of its events were new."""
        combined = [r for b in batches for r in b]
        with self.db.connect() as conn:
            new_ids = set(insert_events(conn, combined, return_ids=True))
        return [sum(1 for r in b if r["event_id"] in new_ids) for b in batches]


class Accepted(BaseModel):
    ok: bool = True
    accepted: int = Field(description="events in the request")
    stored: int = Field(description="events stored now; a redelivered event is not stored twice")
    event_ids: list[str]
    note: str | None = None


def _count(request: Request, name: str, labels: dict[str, str], n: int = 1) -> None:
    request.app.state.metrics.inc(name, labels, n)


async def _store(
    request: Request, records: list[dict[str, Any]], source: str, note: str | None = None
) -> Accepted:
    writer: IngestWriter = request.app.state.writer
    missing = [r for r in records if not r.get("event_id")]
    for r, event_id in zip(missing, new_event_ids(len(missing)), strict=True):
        r["event_id"] = event_id
    stored = await writer.write(records) if records else 0
    _count(request, "klaxon_events_ingested_total", {"source": source}, len(records))
    return Accepted(
        accepted=len(records), stored=stored, event_ids=[r["event_id"] for r in records], note=note
    )


def _records(events: pl.DataFrame) -> list[dict[str, Any]]:
    rows = events.to_dicts()
    for row in rows:
        row["labels"] = row["labels"] or {}
    return rows


@router.post(
    "/ingest/{source}", response_model=Accepted, summary="Receive a monitoring tool's webhook"
)
async def ingest(
    source: str, request: Request, actor: Principal = Depends(permission("events.ingest"))
) -> Accepted:
    """Normalize the tool's payload (docs/sources.md) and store its events.

    An SNS SubscriptionConfirmation is confirmed by fetching its SubscribeURL.
    """
    body = await request.body()
    try:
        result = normalize(
            source, body, received_at=datetime.now(UTC), headers=dict(request.headers)
        )
    except EventValidationError:
        _count(request, "klaxon_events_rejected_total", {"source": source, "reason": "invalid"})
        raise
    if result.confirm_url:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(result.confirm_url)
            answer.raise_for_status()
        except httpx.HTTPError as err:
            raise ApiError(
                502, f"could not confirm the SNS subscription: {err}", field="SubscribeURL"
            ) from None
        return Accepted(accepted=0, stored=0, event_ids=[], note="SNS subscription confirmed")
    return await _store(request, _records(result.events), source, result.note)


def _items(body: bytes, content_type: str) -> list[Any]:
    """A JSON list, a single JSON object, {"events": [...]}, or NDJSON (one object a line)."""
    text = body.strip()
    if not text:
        raise EventValidationError("the body is empty", field="$")
    if "ndjson" in content_type or (text[:1] == b"{" and b"\n" in text and not _is_json(text)):
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as err:
                raise EventValidationError(
                    f"line {number} is not JSON: {err}", field=f"line {number}"
                ) from None
        return items
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise EventValidationError(f"the body is not JSON: {err}", field="$") from None
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        return list(data["events"])
    return data if isinstance(data, list) else [data]


def _is_json(text: bytes) -> bool:
    try:
        orjson.loads(text)
        return True
    except orjson.JSONDecodeError:
        return False


@router.post("/events", response_model=Accepted, summary="Send raw events (JSON list or NDJSON)")
async def post_events(
    request: Request, actor: Principal = Depends(permission("events.ingest"))
) -> Accepted:
    """Canonical events (DSL.md §7 fields); `kind` defaults to event, `ts` to the time received."""
    now = datetime.now(UTC)
    items = _items(await request.body(), request.headers.get("content-type", ""))
    prepared = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise EventValidationError("an event must be a JSON object", field=f"[{i}]", index=i)
        prepared.append({"ts": now, "kind": "event", "source": "api", **item})
    try:
        records = records_from_dicts(prepared, received_at=now)
    except EventValidationError as err:
        _count(request, "klaxon_events_rejected_total", {"source": "api", "reason": "invalid"})
        field = f"[{err.index}].{err.field}" if err.index is not None and err.field else err.field
        raise EventValidationError(err.reason, field=field, index=err.index) from None
    return await _store(request, records, "api")


class ManualAlert(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    severity: str = Field(default="medium", pattern="^(info|low|medium|high|critical)$")
    description: str = ""
    service: str = ""
    environment: str = ""
    host: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    fingerprint: str | None = None
    status: str = Field(default="firing", pattern="^(firing|resolved)$")


@router.post("/alerts", response_model=Accepted, status_code=202, summary="Raise an alert by hand")
async def post_alert(
    alert: ManualAlert, request: Request, actor: Principal = Depends(permission("events.ingest"))
) -> Accepted:
    """A manual alert goes through the rules like any tool's alert (the `source` rule keeps it)."""
    now = datetime.now(UTC)
    fingerprint = alert.fingerprint or identity_hash(
        "api", alert.title, alert.service, alert.environment, alert.host
    )
    item = {
        **alert.model_dump(exclude={"fingerprint"}),
        "ts": now,
        "kind": "alert",
        "source": "api",
        "fingerprint": fingerprint,
        "labels": {**alert.labels, "raised_by": actor.name},
    }
    return await _store(request, records_from_dicts([item], received_at=now), "api")
