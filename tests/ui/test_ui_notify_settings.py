"""The Notifications page's settings tab, driven through the app on the demo store and checked
in the store: a manager changes a team's fallback channel and their own quiet hours; a bad
value is refused with a message naming the field and nothing changes."""

from __future__ import annotations

from typing import Any

from engine.auth.principal import SYSTEM
from engine.notify.channels import add_channel, list_channels
from engine.notify.people import get_team_notify, get_user_notify

PAGE = "notifications"


def _settings(signed_in: Any, role: str) -> Any:
    """The settings tab, signed in as `role`."""
    at = signed_in(role, page=PAGE)
    at.session_state[f"{PAGE}.tab"] = "Settings"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_a_team_fallback_and_my_quiet_hours_are_saved(signed_in: Any, demo_db: Any) -> None:
    with demo_db.connect() as conn:
        add_channel(conn, SYSTEM, "sre_pager", "json://127.0.0.1:9/pager")
        known = [c["name"] for c in list_channels(conn, SYSTEM)]
    at = _settings(signed_in, "manager")
    team = at.selectbox(key=f"{PAGE}.ns_team").value
    with demo_db.read() as conn:
        before = get_team_notify(conn, SYSTEM, team)
    fallback = at.selectbox(key=f"{PAGE}.ns_t.{team}_fallback")
    assert set(known) <= set(fallback.options)
    choice = "sre_pager"
    assert before["fallback_channel"] != choice
    fallback.select(choice).run()
    at.button(key=f"{PAGE}.ns_team_save").click().run()
    assert not at.error, [e.value for e in at.error]
    with demo_db.read() as conn:
        after = get_team_notify(conn, SYSTEM, team)
    assert after["fallback_channel"] == choice
    assert after["default_channels"] == before["default_channels"]
    assert after["escalation_policy"] == before["escalation_policy"]

    me = at.selectbox(key=f"{PAGE}.ns_user").value
    assert me == "manager@example.com"
    prefix = f"{PAGE}.ns_u.{me}"
    at.checkbox(key=f"{prefix}_quiet").check().run()
    at.text_input(key=f"{prefix}_days").input("mon-fri").run()
    at.text_input(key=f"{prefix}_start").input("21:30").run()
    at.text_input(key=f"{prefix}_end").input("06:45").run()
    at.text_input(key=f"{prefix}_qtz").input("Europe/Berlin").run()
    at.button(key=f"{PAGE}.ns_user_save").click().run()
    assert not at.error, [e.value for e in at.error]
    with demo_db.read() as conn:
        mine = get_user_notify(conn, SYSTEM, me)
    assert mine["quiet_hours"] == {
        "days": "mon-fri",
        "start": "21:30",
        "end": "06:45",
        "tz": "Europe/Berlin",
    }


def test_bad_values_are_refused_naming_the_field(signed_in: Any, demo_db: Any) -> None:
    at = _settings(signed_in, "manager")
    me = "manager@example.com"
    with demo_db.read() as conn:
        before = get_user_notify(conn, SYSTEM, me)
    prefix = f"{PAGE}.ns_u.{me}"
    at.checkbox(key=f"{prefix}_quiet").check().run()
    at.text_input(key=f"{prefix}_start").input("late").run()
    at.button(key=f"{PAGE}.ns_user_save").click().run()
    assert any("quiet_hours.start" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key=f"{prefix}_start").input("22:00").run()
    at.text_input(key=f"{prefix}_tz").input("Mars/Olympus").run()
    at.button(key=f"{PAGE}.ns_user_save").click().run()
    assert any("tz: unknown time zone" in e.value for e in at.error), [e.value for e in at.error]
    with demo_db.read() as conn:
        assert get_user_notify(conn, SYSTEM, me) == before

    team = at.selectbox(key=f"{PAGE}.ns_team").value
    tprefix = f"{PAGE}.ns_t.{team}"
    with demo_db.read() as conn:
        team_before = get_team_notify(conn, SYSTEM, team)
    at.checkbox(key=f"{tprefix}_quiet").check().run()
    at.text_input(key=f"{tprefix}_qtz").input("Nowhere/Land").run()
    at.button(key=f"{PAGE}.ns_team_save").click().run()
    assert any("quiet_hours.tz" in e.value for e in at.error), [e.value for e in at.error]
    with demo_db.read() as conn:
        assert get_team_notify(conn, SYSTEM, team) == team_before


def test_a_viewer_sees_team_settings_read_only_and_edits_their_own(signed_in: Any) -> None:
    at = _settings(signed_in, "viewer")
    team = at.selectbox(key=f"{PAGE}.ns_team").value
    assert at.selectbox(key=f"{PAGE}.ns_t.{team}_fallback").disabled
    assert not [b for b in at.button if b.key == f"{PAGE}.ns_team_save"]
    assert at.selectbox(key=f"{PAGE}.ns_user").options == ["viewer@example.com"]
    assert not at.button(key=f"{PAGE}.ns_user_save").disabled


def test_an_admin_changes_someone_elses_time_zone(signed_in: Any, demo_db: Any) -> None:
    at = _settings(signed_in, "admin")
    people = at.selectbox(key=f"{PAGE}.ns_user")
    assert {"admin@example.com", "viewer@example.com"} <= set(people.options)
    people.select("viewer@example.com").run()
    prefix = f"{PAGE}.ns_u.viewer@example.com"
    at.text_input(key=f"{prefix}_tz").input("America/New_York").run()
    at.button(key=f"{PAGE}.ns_user_save").click().run()
    assert not at.error, [e.value for e in at.error]
    with demo_db.read() as conn:
        assert get_user_notify(conn, SYSTEM, "viewer@example.com")["tz"] == "America/New_York"
