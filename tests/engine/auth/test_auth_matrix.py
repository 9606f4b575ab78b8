"""The role × permission matrix, spelled out: every role against every permission."""

from __future__ import annotations

import itertools

import pytest

from engine.auth.principal import (
    PERMISSIONS,
    ROLE_PERMISSIONS,
    ROLES,
    SCOPE_PERMISSIONS,
    PermissionDenied,
    Principal,
)

# The permissions and what each role may do: Y = allowed, . = refused.
#                     admin manager operator viewer
MATRIX = """
alerts.read           Y     Y       Y        Y
alerts.write          Y     Y       Y        .
alerts.delete         Y     Y       .        .
events.ingest         Y     .       .        .
rules.read            Y     Y       Y        Y
rules.write           Y     Y       .        .
silences.write        Y     Y       Y        .
incidents.read        Y     Y       Y        Y
users.read            Y     Y       .        .
users.write           Y     .       .        .
teams.read            Y     Y       Y        Y
teams.write           Y     Y       .        .
integrations.read     Y     Y       Y        .
integrations.write    Y     Y       .        .
analytics.read        Y     Y       Y        Y
reports.write         Y     Y       .        .
audit.read            Y     Y       .        .
system.admin          Y     .       .        .
system.config         Y     .       .        .
"""
EXPECTED = {
    (perm, role): mark == "Y"
    for line in MATRIX.strip().splitlines()
    for perm, *marks in [line.split()]
    for role, mark in zip(("admin", "manager", "operator", "viewer"), marks, strict=True)
}


def test_the_matrix_names_every_role_and_every_permission() -> None:
    assert {p for p, _ in EXPECTED} == set(PERMISSIONS)
    assert {r for _, r in EXPECTED} == set(ROLES)
    # The list is all there.
    for name in (
        "alerts.read",
        "alerts.write",
        "alerts.delete",
        "analytics.read",
        "reports.write",
        "system.admin",
        "system.config",
        "users.read",
        "users.write",
        "teams.read",
        "teams.write",
        "integrations.read",
        "integrations.write",
    ):
        assert name in PERMISSIONS


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("permission", PERMISSIONS)
def test_role_permission(role: str, permission: str) -> None:
    user = Principal(f"{role}@example.com", kind="user", role=role, user_id=1)
    allowed = EXPECTED[(permission, role)]
    assert user.can(permission) is allowed
    if allowed:
        user.require(permission)
    else:
        with pytest.raises(PermissionDenied, match=permission):
            user.require(permission)


def test_roles_only_add_to_the_one_below() -> None:
    chain = ["viewer", "operator", "manager", "admin"]
    for lower, higher in itertools.pairwise(chain):
        assert ROLE_PERMISSIONS[lower] < ROLE_PERMISSIONS[higher]


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (Principal("anonymous", kind="anonymous"), set()),
        (Principal("x@example.com", kind="user", role="admin", mfa_pending=True), set()),
        (Principal("x@example.com", kind="user", role="superuser"), set()),
        (Principal("x@example.com", kind="user", role=None), set()),
        (Principal("key:k", kind="key", scopes=("ingest",)), {"events.ingest"}),
        (Principal("key:k", kind="key", scopes=("nonsense",)), set()),
        (Principal("klaxon", kind="system"), set(PERMISSIONS)),
    ],
)
def test_who_may_do_nothing_and_what_keys_may_do(principal: Principal, expected: set[str]) -> None:
    assert principal.permissions == expected


def test_key_scopes_stay_within_the_known_permissions() -> None:
    for perms in SCOPE_PERMISSIONS.values():
        assert perms <= set(PERMISSIONS)
    assert SCOPE_PERMISSIONS["read"] <= ROLE_PERMISSIONS["viewer"]


def test_an_unknown_permission_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        Principal("klaxon", kind="system").require("alerts.fly")


def test_mfa_pending_is_told_to_enrol() -> None:
    with pytest.raises(PermissionDenied, match="enable MFA first"):
        Principal("x@example.com", kind="user", role="admin", mfa_pending=True).require(
            "alerts.read"
        )
