"""Users and teams as services: the password policy, create/list/update, the last admin,
lockout bookkeeping, and every change audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from engine.auth import teams, users
from engine.auth.errors import (
    AccountLockedError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PasswordPolicyError,
)
from engine.auth.passwords import check_policy, hash_password, verify_password
from engine.auth.principal import SYSTEM, PermissionDenied, Principal
from engine.store.models import AuditEntry, User

PASSWORD = "plenty-long-passphrase-42"
ADMIN = Principal("root@example.com", kind="user", role="admin", user_id=999)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 12"),
        ("x" * 257, "at most 256"),
        ("password1234", "too common"),
        ("Password1234!", "too common"),
        ("aaaaaaaaaaaaaaaa", "4 different"),
        ("abababababab", "4 different"),
        ("abcdefghijklmnop", "plain run"),
        ("qwertyuiopasdf", "plain run"),
        ("ally-s3cret-passw0rd", "email address"),
        ("my name is alice smith!", "user's name"),
        ("tr0ub4dor&3-horse-staple", None),
        ("ünïcødé pässwörd ok", None),
    ],
)
def test_password_policy(password: str, problem: str | None) -> None:
    if problem is None:
        check_policy(password, email="ally@example.com", name="Alice Smith")
    else:
        with pytest.raises(PasswordPolicyError, match=problem) as info:
            check_policy(password, email="ally@example.com", name="Alice Smith")
        assert info.value.field == "password"
        assert info.value.status == 422


def test_hashes_are_argon2id_and_verify() -> None:
    h = hash_password(PASSWORD)
    assert h.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in h
    assert verify_password(h, PASSWORD) == (True, False)
    assert verify_password(h, PASSWORD + "x") == (False, False)
    assert verify_password("", PASSWORD) == (False, False)
    assert verify_password("not-a-hash", PASSWORD) == (False, False)


def test_old_parameters_are_flagged_for_rehash() -> None:
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert verify_password(old, PASSWORD) == (True, True)


def test_create_list_get_update_and_audit(db) -> None:
    teams.create_team(db, SYSTEM, name="platform")
    made = users.create_user(
        db,
        email=" Alice@Example.COM ",
        role="operator",
        password=PASSWORD,
        name="Alice",
        teams=["platform"],
    )
    assert made["email"] == "alice@example.com"
    assert made["teams"] == ["platform"]
    assert not any("argon2" in str(v) for v in made.values())
    users.create_user(db, email="bob@example.com", role="viewer", password=PASSWORD)
    listed = users.list_users(db, ADMIN)
    assert [u["email"] for u in listed] == ["alice@example.com", "bob@example.com"]
    assert [u["email"] for u in users.list_users(db, ADMIN, users.UserQuery(role=["viewer"]))] == [
        "bob@example.com"
    ]
    assert [
        u["email"] for u in users.list_users(db, ADMIN, users.UserQuery(team=["platform"]))
    ] == ["alice@example.com"]
    assert [u["email"] for u in users.list_users(db, ADMIN, users.UserQuery(q="BOB"))] == [
        "bob@example.com"
    ]
    assert (
        next(
            u["email"]
            for u in users.list_users(db, ADMIN, users.UserQuery(sort="email", descending=True))
        )
        == "bob@example.com"
    )

    changed = users.update_user(db, ADMIN, made["id"], role="manager", teams=[])
    assert changed["role"] == "manager"
    assert changed["teams"] == []
    with db.read() as conn:
        actions = [
            (e.action, e.actor) for e in conn.execute(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert actions == [
        ("team.create", "klaxon"),
        ("user.create", "klaxon"),
        ("user.create", "klaxon"),
        ("user.role", "root@example.com"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"email": "not-an-email"}, InvalidInputError, "email"),
        ({"email": "a@b"}, InvalidInputError, "email"),
        ({"role": "root"}, InvalidInputError, "role"),
        ({"password": "short"}, PasswordPolicyError, "password"),
        ({"teams": ["nope"]}, InvalidInputError, "teams"),
        ({"name": "n" * 300}, InvalidInputError, "name"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(db, kwargs, error, field) -> None:
    args = {"email": "carol@example.com", "role": "viewer", "password": PASSWORD} | kwargs
    with pytest.raises(error) as info:
        users.create_user(db, **args)
    assert info.value.field == field
    assert users.list_users(db, ADMIN) == []


def test_duplicate_email_is_a_conflict(db) -> None:
    users.create_user(db, email="dave@example.com", role="viewer", password=PASSWORD)
    with pytest.raises(ConflictError) as info:
        users.create_user(db, email="DAVE@example.com", role="admin", password=PASSWORD)
    assert info.value.status == 409
    assert info.value.field == "email"


def test_permissions_are_checked_in_the_service(db) -> None:
    operator = Principal("op@example.com", kind="user", role="operator", user_id=5)
    manager = Principal("mgr@example.com", kind="user", role="manager", user_id=6)
    with pytest.raises(PermissionDenied, match=r"users\.write"):
        users.create_user(
            db, email="eve@example.com", role="admin", password=PASSWORD, actor=operator
        )
    with pytest.raises(PermissionDenied, match=r"users\.read"):
        users.list_users(db, operator)
    assert users.list_users(db, manager) == []
    with pytest.raises(PermissionDenied, match=r"users\.write"):
        users.create_user(
            db, email="eve@example.com", role="admin", password=PASSWORD, actor=manager
        )
    with pytest.raises(NotFoundError):
        users.get_user(db, ADMIN, 12345)


def test_the_last_admin_stays(db) -> None:
    admin = users.create_user(db, email="root@example.com", role="admin", password=PASSWORD)
    with pytest.raises(ConflictError, match="last active admin"):
        users.update_user(db, ADMIN, admin["id"], role="viewer")
    with pytest.raises(ConflictError, match="last active admin"):
        users.update_user(db, ADMIN, admin["id"], is_active=False)
    users.create_user(db, email="root2@example.com", role="admin", password=PASSWORD)
    assert users.update_user(db, ADMIN, admin["id"], role="viewer")["role"] == "viewer"


def test_lockout_waits_then_locks_and_is_audited(db) -> None:
    made = users.create_user(db, email="frank@example.com", role="viewer", password=PASSWORD)
    actor = Principal("frank@example.com", kind="user", role="viewer", user_id=made["id"])
    for _ in range(users.LOCK_AFTER):
        with db.connect() as conn:
            count = users.note_failure(conn, made["id"], actor, "wrong password")
    assert count == users.LOCK_AFTER
    with db.read() as conn:
        user = conn.execute(select(User).where(User.id == made["id"])).one()
        lockouts = (
            conn.execute(select(AuditEntry.action).where(AuditEntry.action == "auth.lockout"))
            .scalars()
            .all()
        )
    assert lockouts == ["auth.lockout"]
    now = datetime.now(UTC)
    assert user.locked_until > now + timedelta(minutes=users.LOCK_MINUTES - 1)
    with pytest.raises(AccountLockedError, match="locked after 10 failed logins") as info:
        users.check_not_locked(user, now)
    assert 800 < info.value.retry_after <= users.LOCK_MINUTES * 60
    unlocked = users.unlock_user(db, ADMIN, made["id"])
    assert unlocked["failed_logins"] == 0
    assert not unlocked["is_locked"]


def test_throttle_before_lockout(db) -> None:
    made = users.create_user(db, email="gina@example.com", role="viewer", password=PASSWORD)
    actor = Principal("gina@example.com", kind="user", role="viewer", user_id=made["id"])
    waits = []
    for _ in range(5):
        with db.connect() as conn:
            users.note_failure(conn, made["id"], actor, "wrong password")
            conn.execute(select(User.locked_until).where(User.id == made["id"])).scalar_one()
        with db.read() as conn:
            locked = conn.execute(
                select(User.locked_until).where(User.id == made["id"])
            ).scalar_one()
        waits.append(
            None if locked is None else round((locked - datetime.now(UTC)).total_seconds())
        )
    assert waits[:2] == [None, None]
    assert waits[2:] == [1, 2, 4]
    with db.connect() as conn:
        conn.execute(update(User).where(User.id == made["id"]).values(locked_until=None))


def test_teams_crud_and_audit(db) -> None:
    users.create_user(db, email="hank@example.com", role="operator", password=PASSWORD)
    team = teams.create_team(db, ADMIN, name="db-oncall", members=["hank@example.com"])
    assert [m["email"] for m in team["members"]] == ["hank@example.com"]
    with pytest.raises(ConflictError):
        teams.create_team(db, ADMIN, name="db-oncall")
    with pytest.raises(InvalidInputError) as info:
        teams.create_team(db, ADMIN, name="bad name; drop")
    assert info.value.field == "name"
    with pytest.raises(InvalidInputError) as info:
        teams.create_team(db, ADMIN, name="other", members=["nobody@example.com"])
    assert info.value.field == "members"
    updated = teams.update_team(
        db, ADMIN, team["id"], name="database", require_mfa=True, members=[]
    )
    assert updated["name"] == "database"
    assert updated["require_mfa"]
    assert updated["members"] == []
    assert [t["name"] for t in teams.list_teams(db, ADMIN)] == ["database"]
    teams.delete_team(db, ADMIN, team["id"])
    assert teams.list_teams(db, ADMIN) == []
    viewer = Principal("v@example.com", kind="user", role="viewer", user_id=3)
    with pytest.raises(PermissionDenied):
        teams.create_team(db, viewer, name="x")
    with db.read() as conn:
        actions = (
            conn.execute(
                select(AuditEntry.action)
                .where(AuditEntry.resource == "team")
                .order_by(AuditEntry.id)
            )
            .scalars()
            .all()
        )
    assert actions == ["team.create", "team.update", "team.delete"]


def test_api_keys_check_permissions_in_the_service(db) -> None:
    from engine.auth.keys import create_key, list_keys, revoke_key

    operator = Principal("op@example.com", kind="user", role="operator", user_id=5)
    viewer = Principal("v@example.com", kind="user", role="viewer", user_id=6)
    made = create_key(db, name="grafana", scopes=["ingest"])
    assert [k["name"] for k in list_keys(db, operator)] == ["grafana"]
    with pytest.raises(PermissionDenied, match=r"integrations\.read"):
        list_keys(db, viewer)
    with pytest.raises(PermissionDenied, match=r"integrations\.write"):
        revoke_key(db, made.id, operator)
    with pytest.raises(PermissionDenied, match=r"integrations\.write"):
        create_key(db, name="x", scopes=["admin"], actor=operator)
    assert revoke_key(db, made.id, ADMIN) is True
    # A key never holds more than its maker: the same check for the API, CLI and web app.
    manager = Principal("m@example.com", kind="user", role="manager", user_id=7)
    with pytest.raises(PermissionDenied, match=r"it needs events\.ingest"):
        create_key(db, name="sneaky", scopes=["read", "admin"], actor=manager)
    assert create_key(db, name="dash", scopes=["read", "write"], actor=manager).token
    for bad, field in (({"name": "a b"}, "name"), ({"scopes": ["root"]}, "scopes")):
        kwargs = {"name": "ok", "scopes": ["read"], **bad}
        with pytest.raises(InvalidInputError) as caught:
            create_key(db, actor=ADMIN, **kwargs)
        assert caught.value.field == field
    assert sorted(k["name"] for k in list_keys(db, ADMIN)) == ["dash", "grafana"]


def test_a_refusal_in_the_web_app_is_audited_like_one_in_the_api(db) -> None:
    from engine.auth.audit import record_refusal

    viewer = Principal("v@example.com", kind="user", role="viewer", user_id=6, ip="10.0.0.2")
    record_refusal(db, viewer, "web:admin_people", permission="users.read", reason="no")
    with db.read() as conn:
        entry = conn.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.action, entry.actor, entry.resource_id) == (
        "access.denied",
        "v@example.com",
        "web:admin_people",
    )
    assert entry.after == {"path": "web:admin_people", "permission": "users.read", "reason": "no"}
