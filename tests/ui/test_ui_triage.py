"""Triage: acknowledging one alert and several, what a viewer may do, saved views, and
"silence similar" handing the alert over to the silences page."""

from __future__ import annotations

from typing import Any

from engine.auth.principal import SYSTEM
from engine.store.alerts import AlertQuery, get_alert, list_alerts


def _open_ids(db: Any, status: str = "active") -> list[int]:
    with db.read() as conn:
        rows, _ = list_alerts(conn, SYSTEM, AlertQuery(status=(status,)), limit=50)
    return [r["id"] for r in rows]


def _status(db: Any, alert_id: int) -> str:
    with db.read() as conn:
        return str(get_alert(conn, SYSTEM, alert_id)["status"])


def test_acknowledge_an_alert_from_its_detail(signed_in: Any, demo_db: Any, texts: Any) -> None:
    alert_id = _open_ids(demo_db)[0]
    at = signed_in("operator", page="triage")
    at.selectbox(key="triage.open").select(alert_id).run()
    assert f"#{alert_id}" in texts(at)
    at.button(key="triage.ack").click().run()
    assert not at.exception
    assert not at.error
    assert _status(demo_db, alert_id) == "acknowledged"
    assert at.button(key="triage.ack").disabled  # acknowledged: nothing left to acknowledge
    assert any(f"Acknowledged alert #{alert_id}" in t.value for t in at.toast)


def test_bulk_acknowledge_the_selected_rows(signed_in: Any, demo_db: Any) -> None:
    ids = _open_ids(demo_db)
    at = signed_in("operator", page="triage")
    table = at.dataframe(key="triage.table")
    shown = [int(i) for i in table.value["id"]]
    rows = [shown.index(i) for i in ids if i in shown][:2]
    assert len(rows) == 2
    at.session_state["triage.table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()
    at.button(key="triage.bulk_ack").click().run()
    assert not at.exception
    assert [_status(demo_db, shown[r]) for r in rows] == ["acknowledged", "acknowledged"]


def test_a_viewer_sees_alerts_but_no_actions(signed_in: Any, demo_db: Any, texts: Any) -> None:
    alert_id = _open_ids(demo_db)[0]
    at = signed_in("viewer", page="triage")
    at.selectbox(key="triage.open").select(alert_id).run()
    keys = {b.key for b in at.button}
    assert "triage.ack" not in keys
    assert "triage.silence" not in keys
    assert "cannot act" in texts(at) or "not act" in texts(at)
    assert _status(demo_db, alert_id) == "active"


def test_a_saved_view_brings_the_filters_back(signed_in: Any) -> None:
    at = signed_in("operator", page="triage")
    at.multiselect(key="triage.severity").select("critical").run()
    at.text_input(key="triage.view_name").input("criticals").run()
    at.button(key="triage.save_view").click().run()
    at.multiselect(key="triage.severity").unselect("critical").run()
    assert at.multiselect(key="triage.severity").value == []
    at.selectbox(key="triage.view").select("criticals").run()
    at.button(key="triage.apply_view").click().run()
    assert at.multiselect(key="triage.severity").value == ["critical"]
    assert not at.exception


def test_silence_similar_prefills_the_silence(signed_in: Any, demo_db: Any) -> None:
    alert_id = _open_ids(demo_db)[0]
    at = signed_in("operator", page="triage")
    at.selectbox(key="triage.open").select(alert_id).run()
    at.button(key="triage.silence").click().run()
    assert not at.exception
    matcher = at.text_area(key="silences.matcher").value
    with demo_db.read() as conn:
        rule = get_alert(conn, SYSTEM, alert_id)["rule"]
    assert f'rule == "{rule}"' in matcher


def test_filters_and_sort_survive_reruns(signed_in: Any) -> None:
    at = signed_in("operator", page="triage")
    assert at.toggle(key="triage.desc").value is True
    at.toggle(key="triage.desc").set_value(False).run()
    at.multiselect(key="triage.status").unselect("open").run()
    at.run()
    assert at.toggle(key="triage.desc").value is False
    assert at.multiselect(key="triage.status").value == []
    assert not at.exception
