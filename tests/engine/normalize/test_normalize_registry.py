"""The normalizer registry: source names, body parsing, errors and the shared entry point."""

from __future__ import annotations

import inspect
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.normalize import SOURCES, UnknownSourceError, normalize
from engine.schema import EVENT_SCHEMA, EventValidationError
from tests.engine.normalize import fuzzing

MODULES = [
    "prometheus",
    "grafana",
    "datadog",
    "newrelic",
    "cloudwatch",
    "pagerduty",
    "opsgenie",
    "webhook",
]
FIXTURES = sorted(p.name for p in fuzzing.PAYLOADS.glob("*.json"))
DOCS = Path(__file__).parents[3] / "docs" / "sources.md"


def _source(name: str) -> str:
    return name.split("-")[0]


def test_every_source_and_the_alertmanager_alias_are_registered():
    assert set(SOURCES) == {*MODULES, "alertmanager"}
    assert SOURCES["alertmanager"] is SOURCES["prometheus"]


@pytest.mark.parametrize("module", MODULES)
def test_every_module_has_the_same_entry_point(module):
    fn = __import__(f"engine.normalize.{module}", fromlist=["normalize"]).normalize
    params = inspect.signature(fn).parameters
    assert list(params) == ["payload", "received_at", "headers"]
    assert params["received_at"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["headers"].default is None
    assert SOURCES[module] is fn


def test_an_unknown_source_lists_the_known_ones(received_at):
    with pytest.raises(UnknownSourceError) as caught:
        normalize("nagios", b"{}", received_at=received_at)
    assert isinstance(caught.value, EngineError)
    assert not isinstance(caught.value, EventValidationError)
    assert "nagios" in str(caught.value)
    for name in SOURCES:
        assert name in str(caught.value)


def test_source_names_ignore_case_and_spaces(rows, body):
    name = "grafana-firing.json"
    assert rows(" Grafana ", body(name)) == rows("grafana", body(name))


@pytest.mark.parametrize("name", FIXTURES)
def test_bytes_text_and_decoded_bodies_read_the_same(rows, body, name):
    raw = body(name)
    source = _source(name)
    assert rows(source, raw) == rows(source, raw.decode()) == rows(source, orjson.loads(raw))
    assert rows(source, b"\xef\xbb\xbf" + raw) == rows(source, raw)  # a byte order mark


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_gives_a_valid_frame_with_unique_event_ids(body, received_at, name):
    result = normalize(_source(name), body(name), received_at=received_at)
    assert result.events.schema == EVENT_SCHEMA
    ids = result.events["event_id"].to_list()
    assert len(ids) == len(set(ids))
    assert all(ids)
    assert result.events["fingerprint"].str.len_chars().min() in (None, 16)


@pytest.mark.parametrize(
    "data", [b"", b"   ", b"{", b"\xff\xfe", b'{"a": NaN}', "[1,", b'["\\ud800"]']
)
def test_a_body_that_is_not_json_names_the_body(received_at, data):
    with pytest.raises(EventValidationError) as caught:
        normalize("webhook", data, received_at=received_at)
    assert caught.value.field == "$"


@pytest.mark.parametrize("source", MODULES)
def test_a_body_that_is_not_an_object_names_the_body(received_at, source):
    with pytest.raises(EventValidationError) as caught:
        normalize(source, b'"alert"', received_at=received_at)
    assert caught.value.field == "$"


@pytest.mark.parametrize("source", MODULES)
def test_lone_surrogates_from_a_lenient_parser_are_refused(received_at, source):
    doc = {"title": "\ud800", "alerts": [{"status": "firing", "labels": {"a": "\udfff"}}]}
    with pytest.raises(EventValidationError):
        normalize(source, doc, received_at=received_at)


def test_the_docs_describe_every_source():
    text = DOCS.read_text()
    for module in MODULES:
        assert f"`{module}`" in text, module


@pytest.mark.hypothesis
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(MODULES), data=st.binary(max_size=64) | st.text(max_size=64))
def test_random_bodies_normalize_or_name_the_field(source, data):
    try:
        result = normalize(source, data, received_at=fuzzing.RECEIVED_AT)
    except EventValidationError as err:
        field = err.field
    else:
        assert result.events.schema == EVENT_SCHEMA
        return
    assert field
