"""Personal data: export everything about a user; erase them everywhere while the audit chain
still verifies, and an edit made after the erasure is still found."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import insert, inspect, select, text, update

from engine.auth import audit, privacy, sessions, teams, users
from engine.auth.errors import ConflictError
from engine.auth.principal import SYSTEM, PermissionDenied, Principal
from engine.cli import main
from engine.store.alerts import act
from engine.store.models import Alert, AuditEntry, Silence, User

PASSWORD = "plenty-long-passphrase-42"
EMAIL = "zoe.private@example.com"


def _alert(conn, title: str) -> int:
    now = datetime.now(UTC)
    return conn.execute(
        insert(Alert)
        .values(
            rule="r",
            key=orjson.dumps([title]).decode(),
            title=title,
            severity="high",
            status="active",
            first_seen=now,
            last_seen=now,
            created_at=now,
        )
        .returning(Alert.id)
    ).scalar_one()


def _story(db) -> tuple[int, int]:
    """Zoe logs in, acknowledges, notes, is assigned, silences; someone else mentions her."""
    teams.create_team(db, SYSTEM, name="web")
    made = users.create_user(
        db, email=EMAIL, role="operator", password=PASSWORD, name="Zoe Quinn", teams=["web"]
    )
    users.create_user(db, email="root@example.com", role="admin", password=PASSWORD)
    zoe = sessions.login(db, EMAIL, PASSWORD, ip="203.0.113.9", user_agent="ZoeBrowser/1").principal
    other = sessions.login(db, "root@example.com", PASSWORD, ip="198.51.100.1").principal
    with db.connect() as conn:
        alert_id = _alert(conn, "disk full")
        act(conn, zoe, alert_id, "acknowledge", note="on it")
        act(conn, other, alert_id, "assign", assignee=EMAIL, note=f"handing to {EMAIL}")
        act(conn, zoe, alert_id, "resolve", reason="fixed")
        conn.execute(
            insert(Silence).values(
                matcher='service == "db"', created_by=EMAIL, created_at=datetime.now(UTC)
            )
        )
        audit.record(
            conn, zoe, "silence.create", "silence", 1, after={"matcher": 'service == "db"'}
        )
    return made["id"], alert_id


def _everything(db) -> str:
    """Every row of every table, as text."""
    out = []
    with db.read() as conn:
        for table in inspect(conn).get_table_names():
            if table.startswith("events_") or table == "alembic_version":
                continue
            out += [str(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}"'))]
    return "\n".join(out)


def test_export_holds_the_users_data(db) -> None:
    user_id, alert_id = _story(db)
    data = privacy.export_user(db, SYSTEM, user_id)
    assert data["user"]["email"] == EMAIL
    assert data["user"]["teams"] == ["web"]
    assert [a["id"] for a in data["alerts"]] == [alert_id]
    assert data["alerts"][0]["acknowledged_by_user"]
    assert data["alerts"][0]["assigned_to_user"]
    assert [h["action"] for h in data["alert_history"]] == ["acknowledged", "resolved"]
    actions = [e["action"] for e in data["audit"]]
    assert {
        "user.create",
        "auth.login",
        "alert.acknowledge",
        "alert.assign",
        "silence.create",
    } <= set(actions)
    assert data["records_created"]["silences.created_by"] == [1]
    assert len(data["sessions"]) == 1
    assert "argon2" not in orjson.dumps(data).decode()
    zoe = Principal(EMAIL, kind="user", role="operator", user_id=user_id)
    assert privacy.export_user(db, zoe, user_id)["user"]["id"] == user_id  # one's own
    with pytest.raises(PermissionDenied):
        privacy.export_user(db, zoe, user_id + 1)


def test_erase_pseudonymizes_everywhere_and_the_chain_verifies(db) -> None:
    user_id, alert_id = _story(db)
    assert EMAIL in _everything(db)
    assert "203.0.113.9" in _everything(db)
    assert audit.verify(db).ok
    done = privacy.erase_user(db, SYSTEM, user_id)
    alias = f"erased-user-{user_id}"
    assert done["pseudonym"] == alias
    assert done["changed"]["audit_log"] >= 5
    dump = _everything(db)
    for trace in (EMAIL, "Zoe Quinn", "203.0.113.9", "ZoeBrowser"):
        assert trace not in dump, trace
    assert "198.51.100.1" in dump  # other people's entries keep theirs
    result = audit.verify(db)
    assert result.ok, result
    with db.read() as conn:
        alert = conn.execute(select(Alert).where(Alert.id == alert_id)).one()
        user = conn.execute(select(User).where(User.id == user_id)).one()
        erasure = conn.execute(select(AuditEntry).where(AuditEntry.id == done["audit_entry"])).one()
    assert (alert.acknowledged_by, alert.assignee, alert.resolved_by) == (alias, alias, alias)
    assert not user.is_active
    assert user.erased_at is not None
    assert user.password_hash == ""
    assert erasure.action == "privacy.erase"
    assert erasure.after["pseudonym"] == alias
    with pytest.raises(ConflictError):
        privacy.erase_user(db, SYSTEM, user_id)
    from engine.auth.errors import LoginError

    with pytest.raises(LoginError):
        sessions.login(db, EMAIL, PASSWORD)


def test_an_edit_after_the_erasure_is_still_found(db) -> None:
    user_id, _ = _story(db)
    privacy.erase_user(db, SYSTEM, user_id)
    with db.read() as conn:
        redacted = (
            conn.execute(
                select(AuditEntry.id)
                .where(AuditEntry.redacted_by.is_not(None))
                .order_by(AuditEntry.id)
            )
            .scalars()
            .all()
        )
    target = redacted[1]
    with db.connect() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.id == target).values(actor="someone-else"))
    assert audit.verify(db).broken_id == target
    # Nor can a forger mark an ordinary entry as erased to excuse an edit.
    with db.connect() as conn:
        conn.execute(
            update(AuditEntry).where(AuditEntry.id == target).values(actor=f"erased-user-{user_id}")
        )
        plain = (
            conn.execute(
                select(AuditEntry.id)
                .where(AuditEntry.redacted_by.is_(None))
                .order_by(AuditEntry.id)
            )
            .scalars()
            .first()
        )
        conn.execute(
            update(AuditEntry)
            .where(AuditEntry.id == plain)
            .values(actor="x", redacted_by=plain, redacted_hash="0" * 64)
        )
    assert audit.verify(db).broken_id == plain


def test_two_erasures_of_people_in_one_entry(db) -> None:
    user_id, _ = _story(db)
    root = users.list_users(db, SYSTEM, users.UserQuery(q="root"))[0]["id"]
    users.create_user(db, email="root2@example.com", role="admin", password=PASSWORD)
    privacy.erase_user(db, SYSTEM, user_id)
    privacy.erase_user(db, SYSTEM, root)
    assert audit.verify(db).ok
    assert "root@example.com" not in _everything(db)


def test_the_last_admin_cannot_be_erased(db) -> None:
    made = users.create_user(db, email="solo@example.com", role="admin", password=PASSWORD)
    with pytest.raises(ConflictError, match="last active admin"):
        privacy.erase_user(db, SYSTEM, made["id"])


def test_cli_export_and_erase(db, db_url, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KLAXON_DATABASE_URL", db_url)
    _story(db)
    with pytest.raises(SystemExit) as done:
        main(["user", "export", EMAIL])
    assert done.value.code == 0
    assert orjson.loads(capsys.readouterr().out)["user"]["email"] == EMAIL
    with pytest.raises(SystemExit) as done:
        main(["user", "erase", EMAIL])  # no terminal to confirm on
    assert done.value.code == 2
    assert "--yes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["user", "erase", EMAIL, "--yes"])
    assert done.value.code == 0
    assert "erased" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["user", "export", EMAIL])
    assert done.value.code == 2
    assert "no user" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["audit", "verify"])
    assert done.value.code == 0
