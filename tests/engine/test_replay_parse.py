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
from engine.schema import events_from_dicts

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
