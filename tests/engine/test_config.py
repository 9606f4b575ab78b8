"""Settings come from the environment; a default may depend on the store."""

from __future__ import annotations

import pytest

from engine.config import Settings, SettingsError


@pytest.mark.parametrize(
    ("url", "size"),
    [
        (None, 5000),  # the embedded SQLite
        ("sqlite:////tmp/klaxon.db", 5000),
        ("postgresql+psycopg://root@127.0.0.1:5432/test", 20_000),
    ],
)
def test_the_worker_takes_larger_batches_on_postgresql(monkeypatch, url, size) -> None:
    monkeypatch.delenv("KLAXON_BATCH_SIZE", raising=False)
    if url is None:
        monkeypatch.delenv("KLAXON_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("KLAXON_DATABASE_URL", url)
    assert Settings.load().batch_size == size


def test_a_batch_size_set_is_kept_and_a_bad_one_named(monkeypatch) -> None:
    monkeypatch.setenv("KLAXON_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
    monkeypatch.setenv("KLAXON_BATCH_SIZE", "800")
    assert Settings.load().batch_size == 800
    monkeypatch.setenv("KLAXON_BATCH_SIZE", "lots")
    with pytest.raises(SettingsError, match="KLAXON_BATCH_SIZE must be a whole number"):
        Settings.load()
