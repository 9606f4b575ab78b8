"""Exports (CSV, Parquet, JSON, streamed) and PDF reports over HTTP.

- /api/v1/exports/alerts: the alert list with the analytics filters (all time by default);
- /api/v1/exports/analytics?metric=NAME[&table=NAME]: any analytics table;
- /api/v1/exports/audit: the audit log (by `from`/`to`);
- /api/v1/backtest/{id}/export?table=rules|channels|people: a finished backtest's tables;
- /api/v1/reports/pdf: the period's report; /api/v1/reports/schedules: daily or weekly reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from engine.analytics import export, schedules
from engine.analytics.filters import Filters
from engine.analytics.jobs import JOBS
from engine.analytics.report import build_report
from engine.analytics.warehouse import warehouse
from engine.api.analytics import aware
from engine.api.analytics import filters as analytics_filters
from engine.api.deps import permission
from engine.api.errors import ApiError
from engine.auth.principal import Principal
from engine.store.db import Database

router = APIRouter(tags=["exports"])
Format = Annotated[Literal["csv", "parquet", "json"], Query(description="csv, parquet or json")]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def export_filters(
    request: Request,
    from_: Annotated[
        datetime | None, Query(alias="from", description="start, included; default: the beginning")
    ] = None,
    to: Annotated[datetime | None, Query(description="end, excluded; default: no end")] = None,
    team: Annotated[list[str] | None, Query()] = None,
    service: Annotated[list[str] | None, Query()] = None,
    severity: Annotated[list[str] | None, Query()] = None,
    source: Annotated[list[str] | None, Query()] = None,
    rule: Annotated[list[str] | None, Query()] = None,
) -> Filters:
    """The analytics filters, but the whole history unless a period is given."""
    return Filters.of(
        start=from_ or export.EPOCH,
        end=to or export.FOREVER,
        team=team,
        service=service,
        severity=severity,
        source=source,
        rule=rule,
    )


def _streamed(chunks: Iterator[bytes], fmt: str, name: str) -> StreamingResponse:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks,
        media_type=export.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.{fmt}"'},
    )


@router.get("/api/v1/exports/alerts", summary="Alerts as CSV, Parquet or JSON, streamed")
def export_alerts(
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.read"))],
    f: Annotated[Filters, Depends(export_filters)],
    format: Format = "csv",
) -> StreamingResponse:
    wh = warehouse(_db(request), request.app.state.settings.data_dir)
    return _streamed(export.stream(export.alert_batches(wh, f), format), format, "alerts")


@router.get("/api/v1/exports/analytics", summary="An analytics table as CSV, Parquet or JSON")
def export_analytics(
    request: Request,
    actor: Annotated[Principal, Depends(permission("analytics.read"))],
    f: Annotated[Filters, Depends(analytics_filters)],
    metric: Annotated[
        str,
        Query(
            description="dashboard, mtta, mttr, mttd, volume, noise, flapping, sla, teams, delivery"
        ),
    ],
    table: Annotated[
        str | None, Query(description="which table of the answer (default: the main one)")
    ] = None,
    format: Format = "csv",
) -> StreamingResponse:
    db = _db(request)
    wh = warehouse(db, request.app.state.settings.data_dir)
    rows = export.analytics_rows(wh, db, metric, f, table)
    return _streamed(export.stream([export.table_of(rows)], format), format, f"{metric}")


@router.get("/api/v1/exports/audit", summary="The audit log as CSV, Parquet or JSON, streamed")
def export_audit(
    request: Request,
    actor: Annotated[Principal, Depends(permission("audit.read"))],
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
    format: Format = "csv",
) -> StreamingResponse:
    from_, to = aware(from_), aware(to)
    if from_ and to and from_ >= to:
        raise ApiError(422, "from: 'from' must be before 'to'", field="from")
    batches = export.audit_batches(_db(request), actor, from_, to)
    return _streamed(export.stream(batches, format), format, "audit")


@router.get(
    "/api/v1/backtest/{job_id}/export",
    summary="A finished backtest's table as CSV, Parquet or JSON",
)
def export_backtest(
    job_id: str,
    actor: Annotated[Principal, Depends(permission("rules.read"))],
    table: Annotated[Literal["rules", "channels", "people"], Query()] = "rules",
    format: Format = "csv",
) -> StreamingResponse:
    job = JOBS.get(job_id)
    if job.kind != "backtest" or job.status != "done":
        raise ApiError(
            409,
            f"job {job_id} is a {job.kind} that is {job.status}: only a finished backtest exports",
            field="id",
        )
    result: dict[str, Any] = job.result
    frame = export.table_of(result[table]) if result[table] else pl.DataFrame()
    return _streamed(export.stream([frame], format), format, f"backtest-{table}")


def _pdf(content: bytes, name: str) -> Response:
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )


@router.get(
    "/api/v1/reports/pdf", summary="The PDF report of a period: KPIs, charts, SLA, teams, delivery"
)
def report_pdf(
    request: Request,
    actor: Annotated[Principal, Depends(permission("analytics.read"))],
    f: Annotated[Filters, Depends(analytics_filters)],
) -> Response:
    db = _db(request)
    pdf = build_report(db, warehouse(db, request.app.state.settings.data_dir), f)
    return _pdf(pdf, f"klaxon-report-{f.start:%Y%m%d}-{f.end:%Y%m%d}")


@router.get(
    "/api/v1/reports/schedules", summary="Scheduled reports (daily or weekly, through a channel)"
)
def report_schedules(
    request: Request, actor: Annotated[Principal, Depends(permission("analytics.read"))]
) -> list[dict[str, Any]]:
    with _db(request).read() as conn:
        return schedules.list_schedules(conn, actor)


@router.put("/api/v1/reports/schedules/{name}", summary="Create or replace a scheduled report")
def put_report_schedule(
    name: str,
    body: dict[str, Any],
    request: Request,
    actor: Annotated[Principal, Depends(permission("reports.write"))],
) -> dict[str, Any]:
    with _db(request).connect() as conn:
        return schedules.save_schedule(conn, actor, {**body, "name": name})


@router.delete("/api/v1/reports/schedules/{name}", summary="Delete a scheduled report")
def delete_report_schedule(
    name: str, request: Request, actor: Annotated[Principal, Depends(permission("reports.write"))]
) -> dict[str, Any]:
    with _db(request).connect() as conn:
        return schedules.delete_schedule(conn, actor, name)
