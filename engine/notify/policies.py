"""Escalation policies: levels of (delay, targets), and the ladder an alert climbs.

A level's `delay_s` counts from the alert's first notification, like a rule's
`escalate after 15m to sre_leads` (DSL.md §4): delays must grow level by level. A rule's own
`escalate` clauses make the ladder; without them the team's policy does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from engine.auth import audit
from engine.auth.principal import Principal
from engine.notify.channels import check_name
from engine.notify.clock import iso, wall_clock
from engine.notify.errors import NotifyConfigError, NotifyConflictError, NotifyNotFoundError
from engine.notify.targets import Directory
from engine.store.db import orm
from engine.store.models import Alert, EscalationPolicy
from engine.store.transitions import Routing

MAX_LEVELS = 20


def policy_dict(p: EscalationPolicy) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "levels": p.levels,
        "created_at": iso(p.created_at),
    }


def check_levels(conn: Connection, levels: Any) -> list[dict[str, Any]]:
    """Validate levels; every target must name a channel, team, user or schedule that exists."""
    if not isinstance(levels, list) or not levels:
        raise NotifyConfigError(
            "levels: give at least one level {delay_s, targets}", field="levels"
        )
    if len(levels) > MAX_LEVELS:
        raise NotifyConfigError(f"levels: at most {MAX_LEVELS} levels", field="levels")
    directory = Directory(conn)
    out: list[dict[str, Any]] = []
    previous = 0.0
    for i, level in enumerate(levels):
        where = f"levels[{i}]"
        if not isinstance(level, dict):
            raise NotifyConfigError(f"{where}: give {{delay_s, targets}}", field=where)
        delay = level.get("delay_s")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay <= previous:
            hint = "more than the level before" if i else "more than 0"
            raise NotifyConfigError(
                f"{where}.delay_s: give seconds after the first notification, {hint}",
                field=f"{where}.delay_s",
            )
        targets = level.get("targets")
        if not isinstance(targets, list) or not targets:
            raise NotifyConfigError(
                f"{where}.targets: name at least one target", field=f"{where}.targets"
            )
        for j, target in enumerate(targets):
            field = f"{where}.targets[{j}]"
            problem = (
                directory.exists(target)
                if isinstance(target, str) and target
                else "give a target name"
            )
            if problem:
                raise NotifyConfigError(f"{field}: {problem}", field=field)
        previous = float(delay)
        out.append({"delay_s": float(delay), "targets": [str(t) for t in targets]})
    return out


def _load(conn: Connection, name: str) -> EscalationPolicy:
    row = (
        orm(conn)
        .scalars(select(EscalationPolicy).where(EscalationPolicy.name == name))
        .one_or_none()
    )
    if row is None:
        raise NotifyNotFoundError(f"no escalation policy named '{name}'", field="name")
    return row


def list_policies(conn: Connection, actor: Principal) -> list[dict[str, Any]]:
    actor.require("teams.read")
    rows = orm(conn).scalars(select(EscalationPolicy).order_by(EscalationPolicy.name))
    return [policy_dict(p) for p in rows]


def get_policy(conn: Connection, actor: Principal, name: str) -> dict[str, Any]:
    actor.require("teams.read")
    return policy_dict(_load(conn, name))


def create_policy(
    conn: Connection, actor: Principal, name: str, levels: Any, *, description: str = ""
) -> dict[str, Any]:
    actor.require("teams.write")
    name = check_name(name)
    checked = check_levels(conn, levels)
    if orm(conn).scalars(select(EscalationPolicy.id).where(EscalationPolicy.name == name)).first():
        raise NotifyConflictError(
            f"name: an escalation policy named '{name}' already exists", field="name"
        )
    conn.execute(
        insert(EscalationPolicy).values(
            name=name, levels=checked, description=description or "", created_at=wall_clock()
        )
    )
    created = policy_dict(_load(conn, name))
    audit.record(conn, actor, "escalation_policy.create", "escalation_policy", name, after=created)
    return created


def update_policy(
    conn: Connection,
    actor: Principal,
    name: str,
    *,
    levels: Any | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Change levels or description. Alerts already climbing keep the ladder they started with."""
    actor.require("teams.write")
    row = _load(conn, name)
    before = policy_dict(row)
    values: dict[str, Any] = {}
    if levels is not None:
        values["levels"] = check_levels(conn, levels)
    if description is not None:
        values["description"] = description
    if values:
        conn.execute(update(EscalationPolicy).where(EscalationPolicy.id == row.id).values(**values))
    after = policy_dict(_load(conn, name))
    audit.record(
        conn,
        actor,
        "escalation_policy.update",
        "escalation_policy",
        name,
        before=before,
        after=after,
    )
    return after


def delete_policy(conn: Connection, actor: Principal, name: str) -> dict[str, Any]:
    actor.require("teams.write")
    row = _load(conn, name)
    before = policy_dict(row)
    conn.execute(delete(EscalationPolicy).where(EscalationPolicy.id == row.id))
    audit.record(conn, actor, "escalation_policy.delete", "escalation_policy", name, before=before)
    return before


def ladder_for(alert: Alert | Row[Any] | Routing, directory: Directory) -> list[dict[str, Any]]:
    """The rule's `escalate` clauses as levels (same delay → one level), else the team's policy."""
    if alert.escalate:
        by_delay: dict[float, list[str]] = defaultdict(list)
        for step in alert.escalate:
            after_ms, target = step.get("after_ms"), step.get("target")
            if (
                isinstance(after_ms, int | float)
                and after_ms > 0
                and target
                and target not in by_delay[after_ms / 1000]
            ):
                by_delay[after_ms / 1000].append(str(target))
        return [{"delay_s": d, "targets": t} for d, t in sorted(by_delay.items())]
    team = directory.team(alert.team)
    policy = directory.policy(team.escalation_policy if team else None)
    return [dict(level) for level in policy.levels] if policy is not None else []
