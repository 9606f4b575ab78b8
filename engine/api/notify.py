"""Notifications: channels, deliveries, escalation policies, on-call schedules, who is on call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from engine.api.auth import signed_in
from engine.api.deps import Id, permission
from engine.api.errors import ApiError
from engine.auth.principal import Principal
from engine.notify import channels, people, policies, records, schedules
from engine.notify.deliver import send_test_message
from engine.notify.errors import NotifyError
from engine.store.db import Database

router = APIRouter()
channel_router = APIRouter(prefix="/api/v1/channels", tags=["channels"])
notification_router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
policy_router = APIRouter(prefix="/api/v1/escalation-policies", tags=["escalation"])
schedule_router = APIRouter(prefix="/api/v1/schedules", tags=["on-call"])
oncall_router = APIRouter(prefix="/api/v1/oncall", tags=["on-call"])
settings_router = APIRouter(prefix="/api/v1/notify-settings", tags=["notifications"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@contextmanager
def _notify_errors() -> Iterator[None]:
    """NotifyError → the one error shape, with the field it names."""
    try:
        yield
    except NotifyError as err:
        raise ApiError(
            err.status,
            str(err),
            errors=[{"field": err.field, "message": str(err)}],
            field=err.field,
        ) from None


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


# ---------------------------------------------------------------- channels


class ChannelBody(BaseModel):
    name: str = Field(
        min_length=1, max_length=128, description="as rules name it: lower case, digits, _"
    )
    url: str = Field(
        min_length=1, max_length=4000, description="an Apprise URL, e.g. slack://… or mailto://…"
    )
    kind: str | None = Field(
        default=None, description="chat, email, sms, webhook or push; guessed from the URL"
    )
    description: str = Field(default="", max_length=1000)
    rate_limit_per_min: int | None = Field(
        default=None, description="messages a minute; the excess becomes a digest"
    )
    grouping: dict[str, Any] | None = Field(
        default=None, description="{wait_s, interval_s, repeat_s}; interval_s 0: no grouping"
    )


class ChannelPatch(BaseModel):
    url: str | None = Field(default=None, min_length=1, max_length=4000)
    kind: str | None = None
    description: str | None = Field(default=None, max_length=1000)
    rate_limit_per_min: int | None = None
    grouping: dict[str, Any] | None = None
    is_enabled: bool | None = None


@channel_router.get("", summary="Channels, URLs masked")
def list_channels(
    request: Request, actor: Annotated[Principal, Depends(permission("integrations.read"))]
) -> list[dict[str, Any]]:
    with _db(request).read() as conn:
        return channels.list_channels(conn, actor)


@channel_router.post("", status_code=201, summary="Add a channel; Apprise checks the URL")
def add_channel(
    body: ChannelBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("integrations.write"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return channels.add_channel(
            conn,
            actor,
            body.name,
            body.url,
            kind=body.kind,
            description=body.description,
            rate_limit_per_min=body.rate_limit_per_min,
            grouping=body.grouping,
        )


@channel_router.get("/{name}", summary="One channel, URL masked")
def get_channel(
    name: str,
    request: Request,
    actor: Annotated[Principal, Depends(permission("integrations.read"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).read() as conn:
        return channels.get_channel(conn, actor, name)


@channel_router.patch("/{name}", summary="Change a channel's URL, limits, grouping or state")
def patch_channel(
    name: str,
    body: ChannelPatch,
    request: Request,
    actor: Annotated[Principal, Depends(permission("integrations.write"))],
) -> dict[str, Any]:
    given = body.model_fields_set
    extra: dict[str, Any] = {
        k: getattr(body, k) for k in ("rate_limit_per_min", "grouping") if k in given
    }
    with _notify_errors(), _db(request).connect() as conn:
        return channels.update_channel(
            conn,
            actor,
            name,
            url=body.url,
            kind=body.kind,
            description=body.description,
            is_enabled=body.is_enabled,
            **extra,
        )


@channel_router.delete("/{name}", summary="Remove a channel")
def delete_channel(
    name: str,
    request: Request,
    actor: Annotated[Principal, Depends(permission("integrations.write"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return {"deleted": channels.delete_channel(conn, actor, name)}


@channel_router.post("/{name}/test", summary="Send a test message now; says whether it arrived")
def try_channel(
    name: str,
    request: Request,
    actor: Annotated[Principal, Depends(permission("integrations.write"))],
) -> dict[str, Any]:
    with _notify_errors():
        return send_test_message(_db(request), actor, name)


# ---------------------------------------------------------------- deliveries


class NotificationPage(BaseModel):
    items: list[dict[str, Any]]
    next: str | None = Field(description="cursor of the next page, or null at the end")


@notification_router.get("", response_model=NotificationPage, summary="Deliveries, newest first")
def list_notifications(
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.read"))],
    status: Annotated[
        list[str] | None,
        Query(description="pending, held, sending, sent, failed, dead, suppressed"),
    ] = None,
    channel: Annotated[list[str] | None, Query()] = None,
    transition: Annotated[
        list[str] | None, Query(description="fired, resolved, escalated, repeated, test, report")
    ] = None,
    alert_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    target: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[datetime | None, Query(description="created at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="created before (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> NotificationPage:
    with _notify_errors(), _db(request).read() as conn:
        items, nxt = records.list_notifications(
            conn,
            actor,
            status=_split(status),
            channel=_split(channel),
            transition=_split(transition),
            alert_id=alert_id,
            target=target,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    return NotificationPage(items=items, next=nxt)


@notification_router.get(
    "/{notification_id}", summary="One delivery, its message and every attempt"
)
def get_notification(
    notification_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.read"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).read() as conn:
        return records.get_notification(conn, actor, notification_id)


@notification_router.post(
    "/{notification_id}/retry", summary="Send a dead or failed delivery again now (5 attempts)"
)
def retry_notification(
    notification_id: Id,
    request: Request,
    actor: Annotated[Principal, Depends(permission("alerts.write"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return records.retry_notification(conn, actor, notification_id)


# ---------------------------------------------------------------- escalation policies


class PolicyBody(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    levels: list[Any] = Field(
        description='[{"delay_s": 900, "targets": ["oncall:primary", "team:sre"]}]'
    )
    description: str = Field(default="", max_length=1000)


class PolicyPatch(BaseModel):
    levels: list[Any] | None = None
    description: str | None = Field(default=None, max_length=1000)


@policy_router.get("", summary="Escalation policies")
def list_policies(
    request: Request, actor: Annotated[Principal, Depends(permission("teams.read"))]
) -> list[dict[str, Any]]:
    with _db(request).read() as conn:
        return policies.list_policies(conn, actor)


@policy_router.post("", status_code=201, summary="Create an escalation policy")
def create_policy(
    body: PolicyBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.write"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return policies.create_policy(
            conn, actor, body.name, body.levels, description=body.description
        )


@policy_router.get("/{name}", summary="One escalation policy")
def get_policy(
    name: str, request: Request, actor: Annotated[Principal, Depends(permission("teams.read"))]
) -> dict[str, Any]:
    with _notify_errors(), _db(request).read() as conn:
        return policies.get_policy(conn, actor, name)


@policy_router.put("/{name}", summary="Change an escalation policy's levels or description")
def update_policy(
    name: str,
    body: PolicyPatch,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.write"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return policies.update_policy(
            conn, actor, name, levels=body.levels, description=body.description
        )


@policy_router.delete("/{name}", summary="Remove an escalation policy")
def delete_policy(
    name: str, request: Request, actor: Annotated[Principal, Depends(permission("teams.write"))]
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return {"deleted": policies.delete_policy(conn, actor, name)}


# ---------------------------------------------------------------- schedules and who is on call


class ScheduleBody(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    tz: str = Field(default="UTC", max_length=64, description="IANA zone of the hand-off time")
    rotation: dict[str, Any] = Field(
        description='{"kind": "weekly", "users": [EMAIL, ...], "start": "2026-11-23", '
        '"handoff": "09:00"}'
    )
    overrides: list[Any] = Field(
        default_factory=list, description='[{"user": EMAIL, "start": RFC3339, "end": RFC3339}]'
    )


class SchedulePatch(BaseModel):
    tz: str | None = Field(default=None, max_length=64)
    rotation: dict[str, Any] | None = None
    overrides: list[Any] | None = None


def _at(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ApiError(422, "at: give the instant's offset or Z", field="at")
    return at.astimezone(UTC)


@schedule_router.get("", summary="On-call schedules")
def list_schedules(
    request: Request, actor: Annotated[Principal, Depends(permission("teams.read"))]
) -> list[dict[str, Any]]:
    with _db(request).read() as conn:
        return schedules.list_schedules(conn, actor)


@schedule_router.post("", status_code=201, summary="Create an on-call schedule")
def create_schedule(
    body: ScheduleBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.write"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return schedules.create_schedule(
            conn, actor, body.name, tz=body.tz, rotation=body.rotation, overrides=body.overrides
        )


@schedule_router.get("/{name}", summary="One on-call schedule")
def get_schedule(
    name: str, request: Request, actor: Annotated[Principal, Depends(permission("teams.read"))]
) -> dict[str, Any]:
    with _notify_errors(), _db(request).read() as conn:
        return schedules.get_schedule(conn, actor, name)


@schedule_router.put("/{name}", summary="Change a schedule's zone, rotation or overrides")
def update_schedule(
    name: str,
    body: SchedulePatch,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.write"))],
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return schedules.update_schedule(
            conn, actor, name, tz=body.tz, rotation=body.rotation, overrides=body.overrides
        )


@schedule_router.delete("/{name}", summary="Remove a schedule")
def delete_schedule(
    name: str, request: Request, actor: Annotated[Principal, Depends(permission("teams.write"))]
) -> dict[str, Any]:
    with _notify_errors(), _db(request).connect() as conn:
        return {"deleted": schedules.delete_schedule(conn, actor, name)}


@schedule_router.get(
    "/{name}/oncall", summary="Who is on call on one schedule, now (or at) and next"
)
def schedule_oncall(
    name: str,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.read"))],
    at: Annotated[datetime | None, Query(description="an instant (RFC 3339); default now")] = None,
) -> dict[str, Any]:
    with _notify_errors(), _db(request).read() as conn:
        return schedules.who_is_on_call(conn, actor, _at(at), name)[0]


@oncall_router.get("", summary="Who is on call on every schedule, now (or at) and next")
def oncall(
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.read"))],
    schedule: Annotated[str | None, Query(max_length=128)] = None,
    at: Annotated[datetime | None, Query(description="an instant (RFC 3339); default now")] = None,
) -> list[dict[str, Any]]:
    with _notify_errors(), _db(request).read() as conn:
        return schedules.who_is_on_call(conn, actor, _at(at), schedule)


# ---------------------------------------------------------------- teams' and users' settings


class TeamNotifyBody(BaseModel):
    """Only the fields given change; null clears a fallback, policy or quiet hours."""

    model_config = {"extra": "forbid"}
    default_channels: list[str] | None = Field(
        default=None, description="channels a `team:NAME` target (or no notify) reaches"
    )
    fallback_channel: str | None = Field(
        default=None, description="where a critical alert goes when its message is dead"
    )
    escalation_policy: str | None = None
    quiet_hours: dict[str, Any] | None = Field(
        default=None, description='{"days": "mon-fri", "start": "22:00", "end": "07:00", "tz": Z}'
    )


class UserNotifyBody(BaseModel):
    model_config = {"extra": "forbid"}
    contact_channels: list[str] | None = Field(
        default=None, description="channels a `user:EMAIL` or `oncall:SCHEDULE` target reaches"
    )
    tz: str | None = Field(default=None, max_length=64, description="IANA zone")
    quiet_hours: dict[str, Any] | None = None


@settings_router.get("/teams/{name}", summary="A team's channels, fallback, policy, quiet hours")
def get_team_notify(
    name: str, request: Request, actor: Annotated[Principal, Depends(permission("teams.read"))]
) -> dict[str, Any]:
    with _notify_errors(), _db(request).read() as conn:
        return people.get_team_notify(conn, actor, name)


@settings_router.put("/teams/{name}", summary="Change a team's notification settings")
def put_team_notify(
    name: str,
    body: TeamNotifyBody,
    request: Request,
    actor: Annotated[Principal, Depends(permission("teams.write"))],
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if "default_channels" in changes and changes["default_channels"] is None:
        changes["default_channels"] = []
    with _notify_errors(), _db(request).connect() as conn:
        return people.set_team_notify(conn, actor, name, **changes)


@settings_router.get("/users/{email}", summary="A user's contact channels, zone, quiet hours")
def get_user_notify(
    email: str, request: Request, actor: Annotated[Principal, Depends(signed_in)]
) -> dict[str, Any]:
    with _notify_errors(), _db(request).read() as conn:
        return people.get_user_notify(conn, actor, email)


@settings_router.put(
    "/users/{email}", summary="Change a user's notification settings (their own, or users.write)"
)
def put_user_notify(
    email: str,
    body: UserNotifyBody,
    request: Request,
    actor: Annotated[Principal, Depends(signed_in)],
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if "contact_channels" in changes and changes["contact_channels"] is None:
        changes["contact_channels"] = []
    if changes.get("tz", "") is None:
        raise ApiError(422, "tz: give an IANA zone such as Europe/Berlin", field="tz")
    with _notify_errors(), _db(request).connect() as conn:
        return people.set_user_notify(conn, actor, email, **changes)


for _sub in (
    channel_router,
    notification_router,
    policy_router,
    schedule_router,
    oncall_router,
    settings_router,
):
    router.include_router(_sub)
