"""Teams' and users' notification settings: checked on save, audited, and used for delivery."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine.auth.principal import SYSTEM, Principal
from engine.notify.errors import NotifyConfigError, NotifyNotFoundError
from engine.notify.people import set_team_notify, set_user_notify
from engine.notify.quiet import check_quiet_hours, quiet_until
from engine.store.models import AuditEntry


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "ends"),
    [
        ("2026-11-24T20:59", None),  # Tue 21:59 Berlin
        ("2026-11-24T21:00", "2026-11-25T06:00"),  # 22:00: quiet until 07:00
        ("2026-11-25T05:59", "2026-11-25T06:00"),
        ("2026-11-25T06:00", None),
        ("2026-11-27T21:30", "2026-11-28T06:00"),  # Friday night belongs to Friday
        ("2026-11-28T21:30", None),  # Saturday night is not quiet: mon-fri only
        ("2026-11-29T23:30", None),  # Monday 00:30 belongs to Sunday's window: none
        ("2026-03-27T22:00", "2026-03-28T06:00"),  # CET
        ("2026-03-30T21:00", "2026-03-31T05:00"),  # CEST: 07:00 is 05:00Z now
    ],
)
def test_quiet_hours_follow_local_time(instant: str, ends: str | None) -> None:
    quiet = check_quiet_hours(
        {"days": "mon-fri", "start": "22:00", "end": "07:00", "tz": "Europe/Berlin"}
    )
    assert quiet_until(quiet, utc(instant)) == (utc(ends) if ends else None)


def test_quiet_hours_default_to_the_users_zone() -> None:
    quiet = check_quiet_hours({"start": "22:00", "end": "07:00"})
    assert quiet_until(quiet, utc("2026-11-24T03:30"), "America/New_York") == utc(
        "2026-11-24T12:00"
    )
    assert quiet_until(quiet, utc("2026-11-24T03:30")) == utc("2026-11-24T07:00")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"start": "22:00"}, "quiet_hours.end"),
        ({"start": "25:00", "end": "07:00"}, "quiet_hours.start"),
        ({"start": "22:00", "end": "22:00"}, "quiet_hours.end"),
        ({"days": "weekdays", "start": "22:00", "end": "07:00"}, "quiet_hours.days"),
        ({"start": "22:00", "end": "07:00", "tz": "Atlantis"}, "quiet_hours.tz"),
        ({"start": "22:00", "end": "07:00", "mute": True}, "quiet_hours.mute"),
    ],
)
def test_bad_quiet_hours_name_the_part(value, field) -> None:
    with pytest.raises(NotifyConfigError) as info:
        check_quiet_hours(value)
    assert info.value.field == field


def test_team_and_user_settings_are_checked_and_audited(db, people) -> None:
    people.team("platform")
    people.user("ann@example.com")
    with db.connect() as conn:
        from engine.notify.channels import add_channel

        add_channel(conn, SYSTEM, "chat", "json://127.0.0.1/x")
        add_channel(conn, SYSTEM, "backup", "json://127.0.0.1/y")
        team = set_team_notify(
            conn,
            SYSTEM,
            "platform",
            default_channels=["chat"],
            fallback_channel="backup",
            quiet_hours={"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
        )
        user = set_user_notify(
            conn, SYSTEM, "ann@example.com", contact_channels=["chat"], tz="Europe/Berlin"
        )
    assert team["default_channels"] == ["chat"]
    assert team["fallback_channel"] == "backup"
    assert user["contact_channels"] == ["chat"]
    assert user["tz"] == "Europe/Berlin"
    with db.connect() as conn:
        with pytest.raises(NotifyConfigError) as info:
            set_team_notify(conn, SYSTEM, "platform", default_channels=["chat", "nope"])
        assert info.value.field == "default_channels[1]"
        with pytest.raises(NotifyConfigError) as info:
            set_team_notify(conn, SYSTEM, "platform", escalation_policy="ghost")
        assert info.value.field == "escalation_policy"
        with pytest.raises(NotifyConfigError) as info:
            set_user_notify(conn, SYSTEM, "ann@example.com", tz="Moon/Base")
        assert info.value.field == "tz"
        with pytest.raises(NotifyNotFoundError):
            set_user_notify(conn, SYSTEM, "nobody@example.com", tz="UTC")
    with db.read() as conn:
        actions = [a for (a,) in conn.execute(select(AuditEntry.action))]
    assert actions.count("team.notify") == 1
    assert actions.count("user.notify") == 1


def test_people_change_their_own_contact_settings_but_not_others(db, people) -> None:
    from engine.auth.principal import PermissionDenied

    people.user("ann@example.com")
    people.user("ben@example.com")
    with db.read() as conn:
        from engine.store.models import User

        ann_id = conn.execute(select(User.id).where(User.email == "ann@example.com")).scalar_one()
    ann = Principal("ann@example.com", role="operator", user_id=ann_id)
    with db.connect() as conn:
        assert set_user_notify(conn, ann, "ann@example.com", tz="Asia/Tokyo")["tz"] == "Asia/Tokyo"
        with pytest.raises(PermissionDenied):
            set_user_notify(conn, ann, "ben@example.com", tz="Asia/Tokyo")
