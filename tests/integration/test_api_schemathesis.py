"""Schemathesis over the OpenAPI document: whatever the schema allows, no request gets a 5xx.

The operations' Hypothesis strategies are driven directly (the schemathesis pytest plugin does
not load under this pytest); every operation of the document is exercised.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from engine.api.app import create_app
from engine.auth.keys import create_key
from engine.config import Settings
from engine.store.db import Database

pytestmark = [pytest.mark.integration, pytest.mark.hypothesis, pytest.mark.slow]


def test_no_request_gets_a_server_error(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    app = create_app(replace(Settings.load(), database_url=sqlite_url, data_dir=tmp_path), db)
    token = create_key(db, name="schemathesis", scopes=["ingest", "read", "write", "admin"]).token
    # The live stream never ends by design; everything else is fair game.
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app).exclude(
        path="/api/v1/stream"
    )
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            try:
                response = case.call()
            except Exception as err:
                failures.append(f"{case.method} {case.formatted_path}: {type(err).__name__}: {err}")
                return
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                )

        check()
    db.dispose()
    assert operations > 20
    assert not failures, "\n".join(failures[:20])
