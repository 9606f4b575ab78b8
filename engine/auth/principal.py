"""Who is acting and what they may do: one check shared by the API, the CLI and the web app."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import EngineError

ROLES = ("admin", "manager", "operator", "viewer")

PERMISSIONS = (
    "alerts.read",
    "alerts.write",
    "alerts.delete",
    "events.ingest",
    "rules.read",
    "rules.write",
    "silences.write",
    "incidents.read",
    "users.read",
    "users.write",
    "teams.read",
    "teams.write",
    "integrations.read",
    "integrations.write",
    "analytics.read",
    "reports.write",
    "audit.read",
    "system.admin",
    "system.config",
)

# The role matrix (the permission list plus rules, silences, incidents, ingest, audit).
# viewer reads; operator also works alerts and silences; manager also runs teams, rules,
# integrations, reports and reads the audit log and the user list; only admin manages users
# and the system. tests/engine/auth/test_auth_matrix.py spells out every role × permission.
_READ = {"alerts.read", "rules.read", "incidents.read", "teams.read", "analytics.read"}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(_READ),
    "operator": frozenset(_READ | {"alerts.write", "silences.write", "integrations.read"}),
    "manager": frozenset(
        _READ
        | {
            "alerts.write",
            "alerts.delete",
            "silences.write",
            "rules.write",
            "users.read",
            "teams.write",
            "integrations.read",
            "integrations.write",
            "reports.write",
            "audit.read",
        }
    ),
    "admin": frozenset(PERMISSIONS),
}

# What an API key's scopes allow (keys are for integrations and scripts).
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "ingest": frozenset({"events.ingest"}),
    "read": frozenset(_READ),
    "write": frozenset({"alerts.write", "silences.write", "rules.write"}),
    "admin": frozenset(PERMISSIONS),
}
SCOPES = tuple(SCOPE_PERMISSIONS)


class PermissionDenied(EngineError):
    """The actor may not do this; the message names the permission."""

    def __init__(self, actor: Principal, permission: str) -> None:
        if actor.mfa_pending:
            message = f"{actor.name} must enable MFA first (POST /api/v1/auth/mfa/setup)"
        else:
            message = f"{actor.name} may not do this: it needs {permission}"
        super().__init__(message)
        self.actor = actor
        self.permission = permission


@dataclass(frozen=True)
class Principal:
    """A user (by role) or an API key (by scopes), with where the request came from.

    `kind` "anonymous" is who an unauthenticated request is, in audit entries of refusals; it
    may do nothing. A user whose team or role requires MFA and who has not enrolled yet is
    `mfa_pending`: signed in, but without any permission until MFA is enabled.
    """

    name: str
    kind: str = "user"  # user | key | system | anonymous
    role: str | None = None
    scopes: tuple[str, ...] = ()
    user_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    teams: tuple[str, ...] = field(default_factory=tuple)
    mfa_pending: bool = False

    @property
    def permissions(self) -> frozenset[str]:
        if self.kind == "system":
            return frozenset(PERMISSIONS)
        if self.kind == "anonymous" or self.mfa_pending:
            return frozenset()
        if self.kind == "key":
            out: set[str] = set()
            for scope in self.scopes:
                out |= SCOPE_PERMISSIONS.get(scope, frozenset())
            return frozenset(out)
        if self.kind == "user":
            return ROLE_PERMISSIONS.get(self.role or "", frozenset())
        return frozenset()

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        if not self.can(permission):
            raise PermissionDenied(self, permission)


SYSTEM = Principal("klaxon", kind="system")
