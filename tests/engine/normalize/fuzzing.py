"""Hypothesis strategies for normalizer fuzzing: random JSON, and real payloads damaged."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from engine.normalize import SOURCES, Normalized
from engine.schema import EVENT_SCHEMA, EventValidationError, validate

PAYLOADS = Path(__file__).parents[2] / "payloads"
RECEIVED_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    """A payload file from tests/payloads, decoded."""
    return json.loads((PAYLOADS / name).read_text())


# Values that sit on the edges the normalizers branch on.
EDGES: list[Any] = [
    "",
    " ",
    "0001-01-01T00:00:00Z",
    "2021-06-23T08:41:06.622+0000",
    "2022-06-17T00:41:00.782137894Z",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+02:00",
    "1733930133000",
    "1420452374669001603",
    "firing",
    "resolved",
    "ALARM",
    "OK",
    "INSUFFICIENT_DATA",
    "Create",
    "Close",
    "AddNote",
    "incident.resolved",
    "incident.triggered",
    "Notification",
    "SubscriptionConfirmation",
    "UnsubscribeConfirmation",
    "Recovered",
    "P1",
    "critical",
    "{}",
    "[",
    "NaN",
    "1e999",
    10**19,
    2**64 + 1,
    -1,
    0,
    1e300,
    -1e300,
    1420452374669001603,
    True,
    None,
    [],
    {},
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(EDGES)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=15,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.append((*prefix, i))
            out.extend(_paths(value, (*prefix, i)))
    return out


def _retype(value: Any) -> list[Any]:
    return [str(value), [value], {"value": value}, 1, 1.5, True, None, ""]


@st.composite
def damaged(draw: st.DrawFn, doc: Any) -> Any:
    """`doc` with one to three fields deleted, retyped or replaced by random JSON."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = draw(st.sampled_from(["delete", "replace", "retype", "edge"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif action == "retype":
            parent[key] = draw(st.sampled_from(_retype(parent[key])))
        else:
            parent[key] = draw(st.sampled_from(EDGES))
    return doc


@st.composite
def damaged_sns(draw: st.DrawFn, envelope: dict[str, Any]) -> Any:
    """An SNS envelope damaged inside its JSON-in-a-string `Message`, or outside it."""
    if draw(st.booleans()):
        return draw(damaged(envelope))
    envelope = dict(envelope)
    message = draw(damaged(json.loads(envelope["Message"])))
    envelope["Message"] = json.dumps(message)
    return envelope


def assert_normalizes_or_refuses(source: str, payload: Any) -> Normalized | None:
    """The property: a frame that passes validate(EVENT_SCHEMA), or EventValidationError
    naming a field; never KeyError, TypeError, ValueError, AttributeError, ..."""
    try:
        result = SOURCES[source](payload, received_at=RECEIVED_AT)
    except EventValidationError as err:
        field = err.field
    else:
        assert validate(result.events, EVENT_SCHEMA).schema == EVENT_SCHEMA
        assert result.events.schema == EVENT_SCHEMA
        return result
    assert isinstance(field, str)
    assert field
    return None
