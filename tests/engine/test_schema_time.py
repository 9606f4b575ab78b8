"""parse_time: epoch units read by magnitude, and times Python cannot hold refused by name."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.schema import EventValidationError, epoch_unit, parse_time, records_from_dicts

INSTANT = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # 1_700_000_000 s after the epoch


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_700_000_000, INSTANT),
        (1_700_000_000.5, INSTANT + timedelta(milliseconds=500)),
        (1_700_000_000_250, INSTANT + timedelta(milliseconds=250)),
        (1_700_000_000_250.0, INSTANT + timedelta(milliseconds=250)),
        (1_700_000_000_000_123, INSTANT + timedelta(microseconds=123)),
        (1_700_000_000_000_123.0, INSTANT + timedelta(microseconds=123)),
        # 19 digits: exact as an int, where a float would already have lost the microseconds.
        (1_700_000_000_123_456_789, INSTANT + timedelta(microseconds=123_456)),
        (1.7e18, INSTANT),
        (-1_700_000_000, datetime(1916, 2, 18, 1, 46, 40, tzinfo=UTC)),
        (-1_700_000_000_000, datetime(1916, 2, 18, 1, 46, 40, tzinfo=UTC)),
        (-1_700_000_000_000_000, datetime(1916, 2, 18, 1, 46, 40, tzinfo=UTC)),
        (-1_700_000_000_000_000_000, datetime(1916, 2, 18, 1, 46, 40, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_epoch_number_is_read_in_the_unit_its_magnitude_implies(
    value: float, expected: datetime
) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (99_999_999_999, "s"),  # 5138-11-16 in seconds: the last second read as seconds
        (100_000_000_000, "ms"),  # 1973-03-03 in milliseconds
        (99_999_999_999_999, "ms"),
        (100_000_000_000_000, "us"),
        (99_999_999_999_999_999, "us"),
        (100_000_000_000_000_000, "ns"),
        (-99_999_999_999, "s"),
        (-100_000_000_000, "ms"),
        (10**30, "ns"),
    ],
)
def test_epoch_unit_boundaries(value: int, unit: str) -> None:
    assert epoch_unit(value) == unit
    if float(value) == value:  # 99_999_999_999_999_999 has no float of its own
        assert epoch_unit(float(value)) == unit


def test_each_unit_reads_back_the_same_instant() -> None:
    seconds = 1_700_000_000
    readings = [seconds, seconds * 10**3, seconds * 10**6, seconds * 10**9]
    assert {parse_time(v) for v in readings} == {INSTANT}


def test_year_bounds_in_seconds() -> None:
    first = -62_135_596_800  # 0001-01-01T00:00:00Z
    assert parse_time(first) == datetime(1, 1, 1, tzinfo=UTC)
    with pytest.raises(EventValidationError, match=r"out of range.*epoch seconds"):
        parse_time(first - 1)


@pytest.mark.parametrize(
    "value",
    [
        -62_135_596_801,
        -1e20,
        1e300,
        -1e300,
        1.7976931348623157e308,
        10**30,
        -(10**30),
        # str() of this int raises ValueError; the message must not.
        pytest.param(10**5000, id="5001-digit int"),
    ],
)
def test_epoch_out_of_range_is_a_validation_error_naming_the_field(value: float) -> None:
    with pytest.raises(EventValidationError, match="'received' is out of range") as caught:
        parse_time(value, "received")
    assert caught.value.field == "received"
    assert "between years 1 and 9999" in str(caught.value)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_epoch_is_refused(value: float) -> None:
    with pytest.raises(EventValidationError, match="'ts' must be a finite epoch number") as caught:
        parse_time(value)
    assert caught.value.field == "ts"


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00.5+23:59",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:00:00-23:59",
    ],
)
def test_text_whose_offset_leaves_the_year_range_is_refused(text: str) -> None:
    with pytest.raises(EventValidationError, match="'until' is out of range") as caught:
        parse_time(text, "until")
    assert caught.value.field == "until"
    assert text in str(caught.value)


def test_text_at_the_edges_of_the_range_is_accepted() -> None:
    assert parse_time("0001-01-01T00:59:59+00:59") == datetime(1, 1, 1, 0, 0, 59, tzinfo=UTC)
    assert parse_time("9999-12-31T23:59:59.999999Z").year == 9999
    assert parse_time("2026-01-01T00:00:00+23:59") == datetime(2025, 12, 31, 0, 1, tzinfo=UTC)


def test_aware_datetime_that_leaves_the_year_range_is_refused() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    with pytest.raises(EventValidationError, match="'ts' is out of range") as caught:
        parse_time(early)
    assert caught.value.field == "ts"


def test_offsets_python_refuses_stay_syntax_errors() -> None:
    for text in ("2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00+99:99"):
        with pytest.raises(EventValidationError, match="is not an RFC 3339 timestamp"):
            parse_time(text)


def test_a_batch_names_the_item_and_field() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    good = {"ts": "2026-01-01T00:00:00Z", "kind": "event", "source": "api", "title": "ok"}
    bad = {**good, "ts": 1e300}
    with pytest.raises(EventValidationError) as caught:
        records_from_dicts([good, bad], received_at=now)
    assert (caught.value.field, caught.value.index) == ("ts", 1)
    assert "out of range" in caught.value.reason


def test_api_answers_422_naming_the_field(api: Any) -> None:
    body = [{"title": "ok"}, {"title": "far", "ts": -1e300}]
    r = api.post("/api/v1/events", json=body)
    assert r.status_code == 422, r.text
    payload = r.json()
    assert payload["ok"] is False
    assert payload["field"] == "[1].ts"
    assert "out of range" in payload["error"]


# ---------------------------------------------------------------- fuzzing

_offsets = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(lambda d: timezone(timedelta(minutes=round(d.total_seconds() / 60))))
_anything = (
    st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.datetimes(timezones=st.none() | _offsets)
    | st.datetimes(timezones=_offsets).map(lambda d: d.isoformat())
)


@pytest.mark.hypothesis
@settings(max_examples=400, deadline=None)
@given(_anything)
def test_fuzz_parse_time_returns_utc_or_a_validation_error(value: Any) -> None:
    outcome: datetime | EventValidationError
    try:
        outcome = parse_time(value, "when")
    except EventValidationError as err:  # anything else (OverflowError, ValueError) fails
        outcome = err
    if isinstance(outcome, EventValidationError):
        assert outcome.field == "when"
        assert "'when'" in str(outcome)
    else:
        assert outcome.tzinfo is UTC


@pytest.mark.hypothesis
@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=_offsets))
def test_fuzz_rfc3339_text_reads_back_its_instant_or_is_refused(value: datetime) -> None:
    try:
        expected = value.astimezone(UTC)
    except OverflowError:
        with pytest.raises(EventValidationError, match="out of range"):
            parse_time(value.isoformat())
    else:
        assert parse_time(value.isoformat()) == expected


@pytest.mark.hypothesis
@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1974, 1, 1), max_value=datetime(5000, 1, 1), timezones=st.just(UTC)
    )
)
def test_fuzz_epoch_in_every_unit_reads_back_the_instant(value: datetime) -> None:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    micros = delta // timedelta(microseconds=1)
    assert parse_time(micros * 1000) == value
    assert parse_time(micros) == value
    assert parse_time(micros // 1000) == value.replace(microsecond=value.microsecond // 1000 * 1000)
    assert parse_time(micros // 1_000_000) == value.replace(microsecond=0)
