"""Fuzzed payloads for every source only ever get a 2xx or a 4xx, and a 4xx stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.api.app import create_app
from engine.auth.keys import create_key
from engine.config import Settings
from engine.store.db import Database
from engine.store.models import Event

pytestmark = [pytest.mark.integration, pytest.mark.hypothesis]

PAYLOADS = Path(__file__).parents[1] / "payloads"
SOURCES = {
    "prometheus": "alertmanager-04-firing-PeersDemoErrorRatio.json",
    "grafana": "grafana-firing.json",
    "datadog": "datadog-triggered.json",
    "newrelic": "newrelic-activated.json",
    "cloudwatch": "cloudwatch-sns-alarm.json",
    "pagerduty": "pagerduty-v3-triggered.json",
    "opsgenie": "opsgenie-create.json",
    "webhook": None,
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _mutate(value: Any, draw: st.DrawFn) -> Any:
    """Delete, retype or replace one random field somewhere in the payload."""
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["delete", "replace", "recurse"]))
        out = dict(value)
        if action == "delete":
            del out[key]
        elif action == "replace":
            out[key] = draw(json_values)
        else:
            out[key] = _mutate(value[key], draw)
        return out
    if isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        out_list = list(value)
        out_list[i] = _mutate(value[i], draw)
        return out_list
    return draw(json_values)


@st.composite
def bodies(draw: st.DrawFn, source: str) -> bytes:
    name = SOURCES[source]
    kind = draw(st.sampled_from(["mutated", "random", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "random" or name is None:
        return json.dumps(draw(json_values)).encode()
    payload = json.loads((PAYLOADS / name).read_text())
    for _ in range(draw(st.integers(1, 3))):
        payload = _mutate(payload, draw)
    return json.dumps(payload).encode()


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Database]]:
    db = Database(sqlite_url)
    app = create_app(replace(Settings.load(), database_url=sqlite_url, data_dir=tmp_path), db)
    token = create_key(db, name="fuzz", scopes=["ingest"]).token
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c, db
    db.dispose()


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_fuzzed_payloads_get_2xx_or_4xx(source: str, client: tuple[TestClient, Database]) -> None:
    c, db = client

    def stored() -> int:
        with db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(Event)).scalar_one())

    @given(body=bodies(source))
    @settings(
        max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(body: bytes) -> None:
        before = stored()
        path = f"/api/v1/ingest/{source}"
        r = c.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            answer = r.json()
            assert answer["ok"] is False
            assert answer["status"] == r.status_code
            assert answer["error"]
            assert stored() == before, "a refused payload must store nothing"

    check()
