"""Fixtures for the normalizer tests: the payload copies in tests/payloads and a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.normalize import normalize
from engine.schema import EVENT_SCHEMA, validate

PAYLOADS = Path(__file__).parents[2] / "payloads"
RECEIVED_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def received_at() -> datetime:
    return RECEIVED_AT


@pytest.fixture
def body() -> Callable[[str], bytes]:
    """The bytes of a payload file, as the API would receive them."""

    def read(name: str) -> bytes:
        return (PAYLOADS / name).read_bytes()

    return read


@pytest.fixture
def payload() -> Callable[[str], Any]:
    """A payload file decoded, for tests that edit it."""

    def read(name: str) -> Any:
        return orjson.loads((PAYLOADS / name).read_bytes())

    return read


@pytest.fixture
def rows() -> Callable[..., list[dict[str, Any]]]:
    """normalize(source, body) → its events as dicts, after checking the frame's schema."""

    def run(
        source: str,
        data: Any,
        *,
        at: datetime = RECEIVED_AT,
        headers: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        result = normalize(source, data, received_at=at, headers=headers)
        validate(result.events, EVENT_SCHEMA)
        assert result.events.schema == EVENT_SCHEMA
        return result.events.to_dicts()

    return run
