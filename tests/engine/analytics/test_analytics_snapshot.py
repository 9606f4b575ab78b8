"""The Parquet snapshot follows the store: new rows, changed rows, compaction, other versions."""

from __future__ import annotations

from sqlalchemy import update

from engine.analytics.snapshot import FORMAT
from engine.store.models import Alert


def test_a_first_query_builds_the_snapshot_and_later_ones_see_changes(db, wh, store) -> None:
    store.alerts([store.alert(i, store.at(0, 10, i)) for i in range(1, 6)])
    assert wh.frame("select count(*) n from alerts")["n"][0] == 5
    store.alerts([store.alert(6, store.at(1, 9))])
    with db.connect() as conn:
        conn.execute(
            update(Alert)
            .where(Alert.id == 2)
            .values(acknowledged_at=store.at(0, 10, 2, 30), status="acknowledged")
        )
    rows = wh.frame("select id, status, tta_s from alerts order by id")
    assert rows["id"].to_list() == [1, 2, 3, 4, 5, 6]
    assert rows["status"][1] == "acknowledged"
    assert rows["tta_s"][1] == 30.0
    manifest = wh.snapshots.manifest()
    assert manifest is not None
    state = manifest.tables["alerts"]
    assert (state.delta is not None, state.delta_rows, state.touched) == (True, 2, [0])


def test_compaction_folds_the_delta_into_partitions_and_keeps_every_row_once(db, wh, store) -> None:
    store.alerts([store.alert(i, store.at(0, 1, i)) for i in range(1, 4)])
    wh.refresh()
    with db.connect() as conn:
        conn.execute(
            update(Alert)
            .where(Alert.id == 1)
            .values(status="resolved", is_open=False, resolved_at=store.at(0, 2))
        )
    store.alerts([store.alert(4, store.at(0, 3))])
    manifest = wh.refresh(compact=True)
    state = manifest.tables["alerts"]
    assert (state.delta, state.touched) == (None, [])
    assert sum(p.rows for p in state.parts.values()) == 4
    rows = wh.frame("select id, status, ttr_s from alerts order by id")
    assert rows.rows() == [
        (1, "resolved", 3540.0),
        (2, "active", None),
        (3, "active", None),
        (4, "active", None),
    ]


def test_an_unchanged_store_writes_no_new_delta(wh, store) -> None:
    store.alerts([store.alert(1, store.at(0))])
    first = wh.refresh()
    second = wh.refresh()
    assert second.generation == first.generation + 1
    assert second.tables["alerts"].delta is None


def test_a_snapshot_from_another_version_is_rebuilt(wh, store) -> None:
    store.alerts([store.alert(1, store.at(0))])
    wh.refresh()
    path = wh.snapshots.manifest_path
    text = path.read_text()
    assert f'"format": {FORMAT}' in text
    path.write_text(text.replace(f'"format": {FORMAT}', '"format": 0'))
    assert wh.snapshots.manifest() is None
    assert wh.frame("select count(*) n from alerts")["n"][0] == 1
