"""Channels: named Apprise URLs, encrypted at rest, shown and audited only in masked form."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from engine.auth import audit
from engine.auth.principal import Principal
from engine.crypto import decrypt, encrypt
from engine.notify.clock import iso, wall_clock
from engine.notify.errors import NotifyConfigError, NotifyConflictError, NotifyNotFoundError
from engine.notify.transport import KINDS, check_url
from engine.store.db import orm
from engine.store.models import Channel

NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")  # as rules name channels (DSL.md §1)
GROUPING_KEYS = ("wait_s", "interval_s", "repeat_s")
_UNSET: Any = object()


def channel_dict(c: Channel) -> dict[str, Any]:
    """A channel for the API and the CLI: the URL only ever masked."""
    return {
        "id": c.id,
        "name": c.name,
        "kind": c.kind,
        "url": c.url_masked,
        "description": c.description,
        "rate_limit_per_min": c.rate_limit_per_min,
        "grouping": c.grouping,
        "is_enabled": c.is_enabled,
        "created_by": c.created_by,
        "created_at": iso(c.created_at),
    }


def channel_url(c: Channel) -> str:
    """The clear URL, for sending only: never log or return it."""
    return decrypt(c.url_encrypted)


def check_name(name: str, field: str = "name") -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name) or len(name) > 128:
        raise NotifyConfigError(
            f"{field}: '{name}' is not a channel name: use lower-case letters, digits and _, "
            "starting with a letter (as rules name channels)",
            field=field,
        )
    return name


def check_grouping(grouping: dict[str, Any] | None) -> dict[str, float] | None:
    """{"wait_s", "interval_s", "repeat_s"}, each a number of seconds ≥ 0; None for defaults."""
    if grouping is None:
        return None
    if not isinstance(grouping, dict):
        raise NotifyConfigError(
            "grouping: give an object with wait_s, interval_s, repeat_s", field="grouping"
        )
    out: dict[str, float] = {}
    for key, value in grouping.items():
        if key not in GROUPING_KEYS:
            raise NotifyConfigError(
                f"grouping.{key}: unknown setting; use {', '.join(GROUPING_KEYS)}",
                field=f"grouping.{key}",
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= 7 * 86400
        ):
            raise NotifyConfigError(
                f"grouping.{key}: give seconds between 0 and 604800", field=f"grouping.{key}"
            )
        out[key] = float(value)
    return out


def _check_rate(rate: int | None) -> int | None:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= 100_000:
        raise NotifyConfigError(
            "rate_limit_per_min: give a whole number of messages a minute (1 or more)",
            field="rate_limit_per_min",
        )
    return rate


def _check_kind(kind: str | None, detected: str) -> str:
    if kind is None or kind == "":
        return detected
    if kind not in KINDS:
        raise NotifyConfigError(f"kind: '{kind}' is not one of {', '.join(KINDS)}", field="kind")
    return kind


def _load(conn: Connection, name: str) -> Channel:
    row = orm(conn).scalars(select(Channel).where(Channel.name == name)).one_or_none()
    if row is None:
        raise NotifyNotFoundError(f"no channel named '{name}'", field="name")
    return row


def list_channels(conn: Connection, actor: Principal) -> list[dict[str, Any]]:
    actor.require("integrations.read")
    return [channel_dict(c) for c in orm(conn).scalars(select(Channel).order_by(Channel.name))]


def get_channel(conn: Connection, actor: Principal, name: str) -> dict[str, Any]:
    actor.require("integrations.read")
    return channel_dict(_load(conn, name))


def add_channel(
    conn: Connection,
    actor: Principal,
    name: str,
    url: str,
    *,
    kind: str | None = None,
    description: str = "",
    rate_limit_per_min: int | None = None,
    grouping: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Validate the URL with Apprise, encrypt it, store the channel; audited with the masked URL."""
    actor.require("integrations.write")
    name = check_name(name)
    checked = check_url(url)
    values = {
        "name": name,
        "kind": _check_kind(kind, checked.kind),
        "url_encrypted": encrypt(url.strip()),
        "url_masked": checked.masked,
        "description": description or "",
        "rate_limit_per_min": _check_rate(rate_limit_per_min),
        "grouping": check_grouping(grouping),
        "is_enabled": True,
        "created_by": actor.name,
        "created_at": now or wall_clock(),
        "window_count": 0,
    }
    if orm(conn).scalars(select(Channel.id).where(Channel.name == name)).first() is not None:
        raise NotifyConflictError(f"name: a channel named '{name}' already exists", field="name")
    conn.execute(insert(Channel).values(**values))
    created = channel_dict(_load(conn, name))
    audit.record(conn, actor, "channel.create", "channel", name, after=created)
    return created


def update_channel(
    conn: Connection,
    actor: Principal,
    name: str,
    *,
    url: str | None = None,
    kind: str | None = None,
    description: str | None = None,
    rate_limit_per_min: int | None = _UNSET,
    grouping: dict[str, Any] | None = _UNSET,
    is_enabled: bool | None = None,
) -> dict[str, Any]:
    """Change some of a channel's settings; a new URL is validated like a new channel's."""
    actor.require("integrations.write")
    row = _load(conn, name)
    before = channel_dict(row)
    values: dict[str, Any] = {}
    if url is not None:
        checked = check_url(url)
        values |= {"url_encrypted": encrypt(url.strip()), "url_masked": checked.masked}
        if kind is None:
            values["kind"] = checked.kind
    if kind is not None:
        values["kind"] = _check_kind(kind, row.kind)
    if description is not None:
        values["description"] = description
    if rate_limit_per_min is not _UNSET:
        values["rate_limit_per_min"] = _check_rate(rate_limit_per_min)
    if grouping is not _UNSET:
        values["grouping"] = check_grouping(grouping)
    if is_enabled is not None:
        values["is_enabled"] = bool(is_enabled)
    if values:
        conn.execute(update(Channel).where(Channel.id == row.id).values(**values))
    after = channel_dict(_load(conn, name))
    audit.record(conn, actor, "channel.update", "channel", name, before=before, after=after)
    return after


def delete_channel(conn: Connection, actor: Principal, name: str) -> dict[str, Any]:
    """Remove a channel. Rows still waiting for it end dead, saying the channel is gone."""
    actor.require("integrations.write")
    row = _load(conn, name)
    before = channel_dict(row)
    conn.execute(delete(Channel).where(Channel.id == row.id))
    audit.record(conn, actor, "channel.delete", "channel", name, before=before)
    return before
