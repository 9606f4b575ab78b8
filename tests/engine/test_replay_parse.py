"""`klaxon replay` reads an event line as ingest reads the same event: labels included.

Labels are strings (DESIGN.md §3); a label value that is a JSON number, boolean, null, object
or array becomes the text ingest gives it (`schema.label_text`), so a rule backtested with
replay sees the same event the worker sees.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.replay import ReplayInputError, parse_lines
from engine.schema import EVENT_SCHEMA, EventValidationError, events_from_dicts

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# No NUL (ingest refuses it, replay stores nothing) and no lone surrogates (not JSON).
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8)
tricky = st.sampled_from(['"labels": {"a": 1}', "\\", '"', "\\u0000x", "{", "}", ",", ":"])
scalar = st.one_of(
    text,
    tricky,
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
label_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


def as_ingest(item: dict[str, Any]) -> pl.DataFrame:
    return events_from_dicts([item], received_at=NOW).drop("raw")


def as_replay(lines: list[bytes]) -> pl.DataFrame:
    return parse_lines(list(range(1, len(lines) + 1)), lines, NOW).drop("raw")


@given(
    labels=st.one_of(st.none(), st.dictionaries(st.one_of(text, tricky), label_value, max_size=5)),
    title=st.one_of(text, tricky),
    spaced=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_a_line_reads_as_the_same_event_posted_to_the_api(
    labels: dict[str, Any] | None, title: str, spaced: bool
) -> None:
    item = {"ts": "2026-01-05T08:00:00Z", "title": title, "host": "h1", "labels": labels}
    line = json.dumps(item).encode() if spaced else orjson.dumps(item)
    # Among plain lines, as one batch: the odd line is read again, the others are not touched.
    plain = orjson.dumps({"ts": "2026-01-05T08:00:01Z", "labels": {"region": "eu"}})
    got = as_replay([plain, line, plain])
    assert got.slice(1, 1).equals(as_ingest(item))
    assert got.slice(0, 1).equals(got.slice(2, 1))
    assert got["labels"][0] == {"region": "eu"}


@pytest.mark.parametrize(
    ("value", "text_"),
    [
        (1.0, "1.0"),
        (1e20, "1e+20"),
        (None, ""),
        (True, "true"),
        (500, "500"),
        ({"x": [1, "a"]}, '{"x":[1,"a"]}'),
    ],
)
def test_label_values_that_are_not_strings(value: object, text_: str) -> None:
    line = orjson.dumps({"ts": "2026-01-05T08:00:00Z", "labels": {"k": value}})
    assert as_replay([line])["labels"][0] == {"k": text_}


def test_labels_that_are_not_an_object_name_the_line() -> None:
    good = b'{"ts": "2026-01-05T08:00:00Z", "labels": {"k": 1}}'
    with pytest.raises(ReplayInputError, match="line 2: 'labels' must be an object"):
        as_replay([good, b'{"ts": "2026-01-05T08:00:00Z", "labels": "{\\"k\\": \\"v\\"}"}'])


# Every field of an event line, with the JSON values a monitoring tool or a hand-written
# file may give it: the right type, the wrong one, numbers where text is due and text where
# a number is due, empty and null.
STRING_FIELDS = [c for c, t in EVENT_SCHEMA.items() if t == pl.String and c != "raw"]
number = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False)
)
anything = st.one_of(text, number, st.booleans(), st.none(), st.just([]), st.just({"a": 1}))
field_values: dict[str, st.SearchStrategy[Any]] = {
    "ts": st.one_of(
        st.sampled_from(
            [
                "2026-01-05T08:00:00Z",
                "2026-01-05T08:00:00.250+01:00",
                "2026-01-05t08:00:00z",
                "2026-01-05 08:00:00Z",
                "2026-01-05T08:00:00",
                "1767600000",
                "2026-01-05T23:59:60Z",
                "2026-1-5T8:0:0Z",
                "0001-01-01T00:00:00+01:00",
                "",
                "yesterday",
            ]
        ),
        st.integers(1_700_000_000, 1_800_000_000),
        st.integers(1_700_000_000_000, 1_800_000_000_000),
        st.floats(1.7e9, 1.8e9),
        st.booleans(),
        st.none(),
    ),
    **dict.fromkeys(
        ("kind", "status", "severity"),
        st.one_of(
            st.sampled_from(
                ["event", "ALERT", "metric", "Firing", "resolved", "critical", "info", ""]
            ),
            anything,
        ),
    ),
    **dict.fromkeys(STRING_FIELDS, st.one_of(text, tricky, anything, st.just("a\x00b"))),
    "value": st.one_of(
        number,
        st.sampled_from(["1.5", " 2 ", "1e3", "-0", "", "abc", "nan", "inf"]),
        anything,
    ),
    "labels": st.one_of(
        st.none(), st.dictionaries(text, label_value, max_size=3), st.just("x"), st.just([])
    ),
}
an_event = st.fixed_dictionaries(
    {"ts": field_values["ts"]},
    optional={name: s for name, s in field_values.items() if name != "ts"},
)


def read_both(item: dict[str, Any], spaced: bool) -> None:
    """Replay reads `item`, between two plain lines, as ingest does, or refuses it alike."""
    line = json.dumps(item).encode() if spaced else orjson.dumps(item)
    plain = orjson.dumps({"ts": "2026-01-05T08:00:01Z", "title": "ok"})
    try:
        expected = as_ingest(item)
    except EventValidationError as err:
        with pytest.raises(ReplayInputError) as refused:
            as_replay([plain, line, plain])
        assert str(refused.value) == f"line 2: {err.reason}"  # noqa: PT017
        return
    got = as_replay([plain, line, plain])
    assert got.slice(1, 1).equals(expected), (got.slice(1, 1).row(0), expected.row(0))
    assert got.slice(0, 1).equals(got.slice(2, 1))


# An event whose fields are all as they are due.
WELL_FORMED = {
    "ts": "2026-01-05T08:00:00Z",
    "kind": "alert",
    "status": "resolved",
    "severity": "high",
    **{name: f"{name}-1" for name in STRING_FIELDS},
    "value": 2.5,
    "labels": {"region": "eu"},
}


@given(data=st.data(), spaced=st.booleans())
@settings(max_examples=400, deadline=None)
def test_each_field_reads_as_ingest_reads_it(data: st.DataObject, spaced: bool) -> None:
    """One field of a well-formed event given any value: replay reads it as ingest does."""
    name = data.draw(st.sampled_from(sorted(field_values)))
    read_both({**WELL_FORMED, name: data.draw(field_values[name], label=name)}, spaced)


@given(item=an_event, spaced=st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_line_reads_or_is_refused_as_ingest_does(item: dict[str, Any], spaced: bool) -> None:
    """A line replay accepts is the event ingest makes of it; a line ingest refuses, replay
    refuses with the same reason (the first field ingest finds wrong) and the line's number."""
    read_both(item, spaced)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([b'{"ts": 1767600000, "kind": "x"}', b'{"ts": "?"}'], "line 1: 'kind' must be one of"),
        ([b'{"ts": "2026-01-05T08:00:00Z"}', b'{"ts": "?"}', b"{"], "line 2: 'ts' is not"),
        ([b'{"ts": "2026-01-05T08:00:00Z"}', b"[1]", b'{"ts": "?"}'], "line 2: an event must"),
        (
            [b'{"ts": "2026-01-05T08:00:00Z", "host": 1}', b'{"ts": "2026-01-05T08:00:00Z"'],
            "line 2: not JSON",
        ),
        (
            [b'{"ts": "2026-01-05T08:00:00Z", "host": true}', b"{"],
            "line 1: 'host' must be a string",
        ),
        # a raw control character is not JSON; an escaped key is still the key
        ([b'{"ts": "2026-01-05T08:00:00Z", "title": "a\tb"}'], "line 1: not JSON"),
        ([b'{"ts": "2026-01-05T08:00:00Z", "h\\u006fst": true}'], "line 1: 'host' must be"),
    ],
)
def test_the_first_bad_line_is_named(lines: list[bytes], error: str) -> None:
    with pytest.raises(ReplayInputError, match=f"^{error}"):
        as_replay(lines)
