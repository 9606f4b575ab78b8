"""Analytics, backtests and silence previews over HTTP.

Every analytics route takes the same filters: `from` and `to` (RFC 3339; the last 30 days by
default), and `team`, `service`, `severity`, `source`, `rule` (repeat or comma-separate for
several). Durations are in seconds. Backtests and previews run as jobs: POST answers 202 with
the job, GET /api/v1/backtest/{id} reports progress and, when done, the result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dsl import check_rules
from engine.analytics import backtest as bt
from engine.analytics import sla as sla_mod
from engine.analytics.dashboard import dashboard as dashboard_of
from engine.analytics.delivery import delivery as delivery_of
from engine.analytics.errors import AnalyticsQueryError
from engine.analytics.filters import Filters
from engine.analytics.jobs import JOBS, Job
from engine.analytics.metrics import response_times
from engine.analytics.noise import flapping as flapping_of
from engine.analytics.noise import noise as noise_of
from engine.analytics.preview import ProposedSilence, preview_silence
from engine.analytics.teams import people, team_load
from engine.analytics.volume import volume as volume_of
from engine.analytics.warehouse import Warehouse, warehouse
from engine.api.deps import permission
from engine.api.errors import ApiError
from engine.api.silences import SilenceBody
from engine.auth.principal import Principal
from engine.store.db import Database
from engine.store.silences import SilenceSpec
from engine.store.silences import validate as validate_silence

router = APIRouter(tags=["analytics"])
PREFIX = "/api/v1/analytics"
Dim = Literal["team", "service", "severity", "source", "rule"]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _wh(request: Request) -> Warehouse:
    return warehouse(_db(request), request.app.state.settings.data_dir)


def filters(
    from_: Annotated[
        datetime | None,
        Query(alias="from", description="start, included (RFC 3339); default: 30 days before `to`"),
    ] = None,
    to: Annotated[
        datetime | None, Query(description="end, excluded (RFC 3339); default: now")
    ] = None,
    team: Annotated[list[str] | None, Query()] = None,
    service: Annotated[list[str] | None, Query()] = None,
    severity: Annotated[list[str] | None, Query()] = None,
    source: Annotated[list[str] | None, Query()] = None,
    rule: Annotated[list[str] | None, Query()] = None,
    bucket: Annotated[
        Literal["day", "week"], Query(description="series bucket, by creation (UTC)")
    ] = "day",
) -> Filters:
    return Filters.of(
        start=from_,
        end=to,
        team=team,
        service=service,
        severity=severity,
        source=source,
        rule=rule,
        bucket=bucket,
    )


Read = Annotated[Principal, Depends(permission("analytics.read"))]
Filtered = Annotated[Filters, Depends(filters)]


@router.get(
    f"{PREFIX}/dashboard", summary="KPIs, alerts per bucket, noisiest rules, SLA and delivery"
)
def dashboard(request: Request, actor: Read, f: Filtered) -> dict[str, Any]:
    with _db(request).read() as conn:
        goals = sla_mod.targets(conn)
    return dashboard_of(_wh(request), f, goals)


By = Annotated[Dim | None, Query(description="also group by this dimension")]


@router.get(
    f"{PREFIX}/mtta", summary="Time to acknowledge: mean, median, p90 (seconds), per bucket"
)
def mtta(request: Request, actor: Read, f: Filtered, by: By = None) -> dict[str, Any]:
    return response_times(_wh(request), f, "mtta", by=by)


@router.get(f"{PREFIX}/mttr", summary="Time to resolve: mean, median, p90 (seconds), per bucket")
def mttr(request: Request, actor: Read, f: Filtered, by: By = None) -> dict[str, Any]:
    return response_times(_wh(request), f, "mttr", by=by)


@router.get(f"{PREFIX}/mttd", summary="Time to detect (source start to alert): mean, median, p90")
def mttd(request: Request, actor: Read, f: Filtered, by: By = None) -> dict[str, Any]:
    return response_times(_wh(request), f, "mttd", by=by)


@router.get(
    f"{PREFIX}/volume", summary="Alerts per bucket by a dimension, and events per bucket by source"
)
def volume(
    request: Request, actor: Read, f: Filtered, by: Annotated[Dim, Query()] = "source"
) -> dict[str, Any]:
    return volume_of(_wh(request), f, by=by)


@router.get(
    f"{PREFIX}/noise",
    summary="Noisiest rules and fingerprints, auto-resolved and false-positive shares",
)
def noise(
    request: Request, actor: Read, f: Filtered, limit: Annotated[int, Query(ge=1, le=1000)] = 10
) -> dict[str, Any]:
    return noise_of(_wh(request), f, limit=limit)


@router.get(
    f"{PREFIX}/flapping",
    summary="(rule, key)s that fired at least min_fires times within window seconds",
)
def flapping(
    request: Request,
    actor: Read,
    f: Filtered,
    min_fires: Annotated[int, Query(ge=2, le=1000)] = 3,
    window: Annotated[int, Query(ge=1, le=90 * 86400, description="seconds")] = 3600,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    return flapping_of(_wh(request), f, min_fires=min_fires, window_s=window, limit=limit)


@router.get(
    f"{PREFIX}/sla", summary="Acknowledge and resolve breaches against per-severity targets"
)
def sla(
    request: Request, actor: Read, f: Filtered, by: Annotated[Dim | None, Query()] = None
) -> dict[str, Any]:
    with _db(request).read() as conn:
        goals = sla_mod.targets(conn)
    return sla_mod.sla(_wh(request), f, goals, by=by)


@router.get(f"{PREFIX}/sla/targets", summary="The SLA targets per severity (seconds; null: none)")
def sla_targets(request: Request, actor: Read) -> dict[str, Any]:
    with _db(request).read() as conn:
        return sla_mod.targets(conn)


@router.put(
    f"{PREFIX}/sla/targets", summary='Change SLA targets, e.g. {"critical": {"ack_s": 300}}'
)
def put_sla_targets(
    body: dict[str, Any],
    request: Request,
    actor: Annotated[Principal, Depends(permission("reports.write"))],
) -> dict[str, Any]:
    with _db(request).connect() as conn:
        return sla_mod.save_targets(conn, actor, body)


@router.get(
    f"{PREFIX}/teams", summary="Alerts per team member and after-hours pages, per team and person"
)
def teams(request: Request, actor: Read, f: Filtered) -> dict[str, Any]:
    with _db(request).read() as conn:
        team_frame, members = people(conn)
    return team_load(_wh(request), f, team_frame, members)


@router.get(f"{PREFIX}/delivery", summary="Notifications by channel and status, delivery latency")
def delivery(request: Request, actor: Read, f: Filtered) -> dict[str, Any]:
    return delivery_of(_wh(request), f)


# ---------------------------------------------------------------- backtests and previews


def aware(value: datetime | None) -> datetime | None:
    """A time without an offset is UTC (so naive and aware times compare)."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise ApiError(422, "a time is out of range", field="from") from None


class Period(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: datetime = Field(alias="from", description="start of the period, included (RFC 3339)")
    to: datetime = Field(description="end of the period, excluded (RFC 3339)")
    wait: bool = Field(default=False, description="answer with the finished job instead of 202")


class BacktestBody(Period):
    rules: str = Field(min_length=1, max_length=2_000_000, description="a whole rules file")


class PreviewBody(Period, SilenceBody):
    wait: bool = Field(default=True, description="answer with the finished job instead of 202")


def _describe(err: Exception) -> dict[str, Any]:
    if isinstance(err, AnalyticsQueryError):
        return {"message": str(err), "field": err.field}
    return {"message": str(err)}


def _answer(job: Job, wait: bool, response: Response) -> dict[str, Any]:
    if wait:
        job = JOBS.wait(job.id, timeout=600)
    if job.status in ("queued", "running"):
        response.status_code = 202
        response.headers["Location"] = f"/api/v1/backtest/{job.id}"
    elif job.status == "failed":
        raise ApiError(
            422 if job.error and job.error.get("field") else 500,
            (job.error or {}).get("message", "the job failed"),
            **{k: v for k, v in (job.error or {}).items() if k != "message"},
        )
    return job.to_dict()


def _period(body: Period) -> None:
    body.from_, body.to = aware(body.from_), aware(body.to)  # type: ignore[assignment]
    try:
        bt.check_period(body.from_, body.to)
    except AnalyticsQueryError as err:
        raise ApiError(422, f"{err.field}: {err}", field=err.field) from None


@router.post(
    "/api/v1/backtest", summary="Run a rules file over a past period's events", status_code=202
)
def backtest(
    body: BacktestBody,
    request: Request,
    response: Response,
    actor: Annotated[Principal, Depends(permission("rules.read"))],
) -> dict[str, Any]:
    errors = check_rules(body.rules, "rules")
    if errors:
        first = errors[0]
        raise ApiError(
            422,
            f"rules: {first.full_message}",
            errors=[e.to_dict() for e in errors],
            field="rules",
            line=first.line,
            column=first.column,
        )
    _period(body)
    db, wh = _db(request), _wh(request)
    default = request.app.state.settings.rules_file
    job = JOBS.submit(
        "backtest",
        lambda progress: bt.backtest(
            db, wh, body.rules, body.from_, body.to, default_rules=default, progress=progress
        ),
        _describe,
    )
    return _answer(job, body.wait, response)


@router.get(
    "/api/v1/backtest/{job_id}", summary="A backtest or preview job: progress, then its result"
)
def backtest_job(
    job_id: str, request: Request, actor: Annotated[Principal, Depends(permission("rules.read"))]
) -> dict[str, Any]:
    return JOBS.get(job_id).to_dict()


@router.post(
    "/api/v1/silences/preview",
    summary="What a proposed silence would have muted over a past period",
)
def silence_preview(
    body: PreviewBody,
    request: Request,
    response: Response,
    actor: Annotated[Principal, Depends(permission("rules.read"))],
) -> dict[str, Any]:
    body.starts_at, body.ends_at = aware(body.starts_at), aware(body.ends_at)
    validate_silence(
        SilenceSpec(body.matcher, body.starts_at, body.ends_at, body.during, body.comment)
    )
    _period(body)
    proposed = ProposedSilence(
        body.matcher, body.starts_at, body.ends_at, body.during, body.comment
    )
    db, wh = _db(request), _wh(request)
    default = request.app.state.settings.rules_file
    job = JOBS.submit(
        "preview",
        lambda progress: preview_silence(
            db, wh, proposed, body.from_, body.to, default_rules=default, progress=progress
        ),
        _describe,
    )
    return _answer(job, body.wait, response)
