"""On-call rotations: daily and weekly hand-offs at a local time, overrides, now and next, DST."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine.notify.errors import NotifyConfigError
from engine.notify.oncall import check_rotation, now_and_next, on_call


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rotation(
    kind: str = "daily", handoff: str = "09:00", tz: str = "Europe/Berlin", overrides=None
):
    users = ["ann", "ben", "cat"]
    return check_rotation(
        tz, {"kind": kind, "users": users, "start": "2026-03-23", "handoff": handoff}, overrides
    )


@pytest.mark.parametrize(
    ("instant", "user"),
    [
        ("2026-03-23T07:59:59Z", "cat"),  # before the first hand-off the rotation runs backwards
        ("2026-03-23T08:00:00Z", "ann"),  # 09:00 CET
        ("2026-03-24T07:59:59Z", "ann"),
        ("2026-03-24T08:00:00Z", "ben"),
        ("2026-03-26T08:00:00Z", "ann"),
    ],
)
def test_a_daily_rotation_hands_over_at_the_local_time(instant: str, user: str) -> None:
    assert on_call(rotation(), at(instant)).user == user


def test_shifts_across_the_spring_and_autumn_dst_changes_are_23_and_25_hours() -> None:
    r = rotation()
    spring = on_call(r, at("2026-03-28T12:00:00Z"))  # Saturday; clocks go forward on Sunday
    assert (spring.start, spring.end) == (at("2026-03-28T08:00:00Z"), at("2026-03-29T07:00:00Z"))
    assert spring.end - spring.start == timedelta(hours=23)
    autumn = on_call(r, at("2026-10-24T12:00:00Z"))  # clocks go back on Sunday 25 October
    assert (autumn.start, autumn.end) == (at("2026-10-24T07:00:00Z"), at("2026-10-25T08:00:00Z"))
    assert autumn.end - autumn.start == timedelta(hours=25)
    # Every hand-off is at 09:00 local, whatever the offset.
    for shift in (spring, autumn):
        assert shift.end.astimezone(r_zone()).strftime("%H:%M") == "09:00"


def r_zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Berlin")


def test_a_hand_off_inside_the_skipped_hour_happens_once_at_the_jump() -> None:
    r = rotation(handoff="02:30")  # 02:30 does not exist on 2026-03-29 in Berlin
    before = on_call(r, at("2026-03-29T00:59:00Z"))
    after = on_call(r, at("2026-03-29T01:30:00Z"))
    assert before.user != after.user
    assert before.end == after.start
    assert after.start <= at("2026-03-29T01:30:00Z")
    assert on_call(r, at("2026-03-30T00:29:00Z")).user == after.user


def test_a_weekly_rotation_and_its_next_shift() -> None:
    r = rotation(kind="weekly", handoff="10:00", tz="America/New_York")
    plan = now_and_next(r, at("2026-03-25T12:00:00Z"))
    assert plan["now"] == {
        "user": "ann",
        "start": "2026-03-23T14:00:00Z",
        "end": "2026-03-30T14:00:00Z",
        "source": "rotation",
    }
    assert plan["next"]["user"] == "ben"
    assert plan["next"]["end"] == "2026-04-06T14:00:00Z"


def test_overrides_cover_part_of_a_shift_and_the_rotation_resumes() -> None:
    covers = [{"user": "dan", "start": "2026-03-24T12:00:00Z", "end": "2026-03-24T18:00:00Z"}]
    r = rotation(overrides=covers)
    before = now_and_next(r, at("2026-03-24T10:00:00Z"))
    assert before["now"]["user"] == "ben"
    assert before["now"]["end"] == "2026-03-24T12:00:00Z"
    assert before["next"] == {
        "user": "dan",
        "start": "2026-03-24T12:00:00Z",
        "end": "2026-03-24T18:00:00Z",
        "source": "override",
    }
    after = on_call(r, at("2026-03-24T19:00:00Z"))
    assert (after.user, after.start, after.source) == (
        "ben",
        at("2026-03-24T18:00:00Z"),
        "rotation",
    )


@pytest.mark.parametrize(
    ("tz", "settings", "overrides", "field"),
    [
        ("Mars/Olympus", {"users": ["a"], "start": "2026-01-01"}, None, "tz"),
        ("UTC", {"kind": "hourly", "users": ["a"], "start": "2026-01-01"}, None, "rotation.kind"),
        ("UTC", {"users": [], "start": "2026-01-01"}, None, "rotation.users"),
        ("UTC", {"users": ["a"], "start": "next monday"}, None, "rotation.start"),
        (
            "UTC",
            {"users": ["a"], "start": "2026-01-01", "handoff": "9am"},
            None,
            "rotation.handoff",
        ),
        (
            "UTC",
            {"users": ["a"], "start": "2026-01-01"},
            [{"user": "b", "start": "2026-01-02T00:00:00Z"}],
            "overrides[0].end",
        ),
        (
            "UTC",
            {"users": ["a"], "start": "2026-01-01"},
            [{"user": "b", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}],
            "overrides[0].end",
        ),
    ],
)
def test_bad_rotations_name_the_field(tz, settings, overrides, field) -> None:
    with pytest.raises(NotifyConfigError) as info:
        check_rotation(tz, settings, overrides)
    assert info.value.field == field


def test_the_api_answers_who_is_on_call_now_and_next(api, people) -> None:
    for user in ("ann", "ben"):
        people.user(f"{user}@example.com")
    body = {
        "name": "primary",
        "tz": "UTC",
        "rotation": {
            "kind": "weekly",
            "users": ["ann@example.com", "ben@example.com"],
            "start": "2026-11-02",
            "handoff": "09:00",
        },
    }
    assert api.post("/api/v1/schedules", json=body).status_code == 201
    body2 = {
        **body,
        "name": "secondary",
        "rotation": {**body["rotation"], "users": ["ben@example.com"]},
    }
    assert api.post("/api/v1/schedules", json=body2).status_code == 201
    everyone = api.get("/api/v1/oncall", params={"at": "2026-11-10T12:00:00Z"}).json()
    assert [(s["schedule"], s["now"]["user"], s["next"]["user"]) for s in everyone] == [
        ("primary", "ben@example.com", "ann@example.com"),
        ("secondary", "ben@example.com", "ben@example.com"),
    ]
    one = api.get("/api/v1/schedules/primary/oncall", params={"at": "2026-11-10T12:00:00Z"}).json()
    assert one["now"] == {
        "user": "ben@example.com",
        "start": "2026-11-09T09:00:00Z",
        "end": "2026-11-16T09:00:00Z",
        "source": "rotation",
    }
    now = api.get("/api/v1/oncall", params={"schedule": "primary"})
    assert now.status_code == 200
    assert now.json()[0]["now"]["user"] in (
        "ann@example.com",
        "ben@example.com",
    )
    override = [
        {"user": "ann@example.com", "start": "2026-11-10T00:00:00Z", "end": "2026-11-11T00:00:00Z"}
    ]
    assert api.put("/api/v1/schedules/primary", json={"overrides": override}).status_code == 200
    one = api.get("/api/v1/schedules/primary/oncall", params={"at": "2026-11-10T12:00:00Z"}).json()
    assert (one["now"]["user"], one["now"]["source"]) == ("ann@example.com", "override")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # checks made before the store
@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        (
            {"rotation": {"users": ["ann@example.com", "zed@example.com"], "start": "2026-11-02"}},
            422,
            "rotation.users[1]",
        ),
        (
            {
                "overrides": [
                    {
                        "user": "zed@example.com",
                        "start": "2026-11-10T00:00:00Z",
                        "end": "2026-11-11T00:00:00Z",
                    }
                ]
            },
            422,
            "overrides[0].user",
        ),
        ({"tz": "Nowhere/Land"}, 422, "tz"),
        ({"name": "Primary Schedule"}, 422, "name"),
        ({"name": "primary"}, 409, "name"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(api, people, change, status, field) -> None:
    people.user("ann@example.com")
    body = {"name": "primary", "rotation": {"users": ["ann@example.com"], "start": "2026-11-02"}}
    assert api.post("/api/v1/schedules", json=body).status_code == 201
    r = api.post("/api/v1/schedules", json={**body, "name": "other", **change})
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert r.json()["ok"] is False
    bad_at = api.get("/api/v1/oncall", params={"at": "2026-11-10T12:00:00"})
    assert bad_at.status_code == 422
    assert bad_at.json()["field"] == "at"
    assert api.get("/api/v1/schedules/nope/oncall").status_code == 404
