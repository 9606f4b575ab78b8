"""The main action of each page, driven through the app on the demo store and checked in the
store: open an incident, create and expire a silence, add and test a channel (against a real
HTTP receiver), create a user and find it in the audit log, export analytics and the PDF
report, and the overview keeping its filters across runs."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson
import pytest

from engine.auth.principal import SYSTEM
from engine.auth.users import find_user
from engine.notify.channels import list_channels
from engine.store.silences import list_silences


def _no_problems(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _tab(at: Any, key: str, label: str) -> Any:
    at.session_state[key] = label
    return at.run()


# ---------------------------------------------------------------- incidents


def test_an_incident_opens_with_its_alerts(signed_in: Any, texts: Any) -> None:
    at = signed_in("operator", page="incidents")
    picker = at.selectbox(key="incidents.open")
    label = picker.options[1]  # "#<id> · <title>", the newest incident
    picker.select_index(1).run()
    _no_problems(at)
    assert f"Incident {label.split(' ')[0]}" in texts(at)
    assert len(at.dataframe(key="incidents.alerts").value) >= 1


# ---------------------------------------------------------------- silences


def test_a_silence_is_created_and_expired(signed_in: Any, demo_db: Any) -> None:
    at = signed_in("operator", page="silences")
    at.text_area(key="silences.matcher").input('service == "checkout"').run()
    at.text_input(key="silences.comment").input("deploy of checkout").run()
    assert not at.button(key="silences.create").disabled
    at.button(key="silences.create").click().run()
    _no_problems(at)
    with demo_db.read() as conn:
        made = [s for s in list_silences(conn, SYSTEM) if s["comment"] == "deploy of checkout"]
    assert len(made) == 1
    assert made[0]["active"]
    at.selectbox(key="silences.expire_pick").select(made[0]["id"]).run()
    at.button(key="silences.expire").click().run()
    _no_problems(at)
    with demo_db.read() as conn:
        after = next(s for s in list_silences(conn, SYSTEM) if s["id"] == made[0]["id"])
    assert not after["active"]
    assert after["expired_at"]


def test_a_wrong_matcher_is_shown_and_not_saved(signed_in: Any, demo_db: Any) -> None:
    with demo_db.read() as conn:
        before = len(list_silences(conn, SYSTEM))
    at = signed_in("operator", page="silences")
    at.text_area(key="silences.matcher").input('service === "checkout"').run()
    assert not at.exception
    assert at.error  # the matcher's error, with a caret block
    assert any("^" in c.value for c in at.code)
    assert at.button(key="silences.create").disabled
    with demo_db.read() as conn:
        assert len(list_silences(conn, SYSTEM)) == before


# ---------------------------------------------------------------- notifications


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        type(self).bodies.append(self.rfile.read(size))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A real HTTP server on a free port that keeps the bodies posted to it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/hook", _Receiver.bodies
    server.shutdown()
    server.server_close()


def test_a_channel_is_added_and_tested(
    signed_in: Any, demo_db: Any, receiver: tuple[str, list[bytes]]
) -> None:
    url, bodies = receiver
    at = signed_in("manager", page="notifications")
    at.text_input(key="notifications.ch_name").input("ui_test_hook")
    at.text_input(key="notifications.ch_url").input(url)
    at.button(key="notifications.ch_add").click().run()
    _no_problems(at)
    with demo_db.read() as conn:
        assert "ui_test_hook" in {c["name"] for c in list_channels(conn, SYSTEM)}
    at.selectbox(key="notifications.ch_pick").select("ui_test_hook").run()
    at.button(key="notifications.ch_test").click().run()
    _no_problems(at)
    assert not at.warning, [w.value for w in at.warning]
    assert any("Test message sent through ui_test_hook" in t.value for t in at.toast)
    assert len(bodies) == 1
    assert orjson.loads(bodies[0])  # Apprise's JSON message


def test_a_bad_channel_url_is_a_message(signed_in: Any, demo_db: Any) -> None:
    at = signed_in("manager", page="notifications")
    at.text_input(key="notifications.ch_name").input("broken")
    at.text_input(key="notifications.ch_url").input("nosuchscheme://x")
    at.button(key="notifications.ch_add").click().run()
    assert not at.exception
    assert any("Could not add the channel" in e.value for e in at.error)
    with demo_db.read() as conn:
        assert "broken" not in {c["name"] for c in list_channels(conn, SYSTEM)}


# ---------------------------------------------------------------- admin


def test_an_admin_creates_a_user_and_finds_it_in_the_audit_log(
    signed_in: Any, demo_db: Any
) -> None:
    at = signed_in("admin", page="admin")
    at.text_input(key="admin.u_email").input("new.person@example.com")
    at.text_input(key="admin.u_name").input("New Person")
    at.text_input(key="admin.u_password").input("a-long-enough-password-1")
    at.button(key="admin.u_create").click().run()
    _no_problems(at)
    with demo_db.read() as conn:
        user = find_user(conn, "new.person@example.com")
    assert user is not None
    assert user.role == "operator"
    at = _tab(at, "admin.tab", "Audit log")
    at.text_input(key="admin.a_q").input("new.person@example.com").run()
    _no_problems(at)
    audit = next(d.value for d in at.dataframe if "action" in d.value.columns)
    actions = list(audit["action"])
    assert "user.create" in actions
    at.button(key="admin.a_verify").click().run()
    assert any("The chain holds" in s.value for s in at.success)


def test_a_manager_cannot_create_users(signed_in: Any) -> None:
    at = signed_in("manager", page="admin")
    _no_problems(at)
    assert "admin.u_create" not in {b.key for b in at.button}


# ---------------------------------------------------------------- analytics


def test_analytics_exports_the_volume_and_the_pdf(
    signed_in: Any, downloads: dict[str, bytes]
) -> None:
    at = signed_in("manager", page="analytics")
    at = _tab(at, "analytics.tab", "Volume")
    _no_problems(at)
    csv = [v for k, v in downloads.items() if k.startswith("klaxon-volume-") and k.endswith("csv")]
    assert csv
    assert csv[-1].splitlines()[0].startswith(b"bucket")
    at.button(key="analytics.pdf").click().run(timeout=120)
    _no_problems(at)
    pdfs = [v for k, v in downloads.items() if k.startswith("klaxon-report-")]
    assert pdfs
    assert pdfs[-1].startswith(b"%PDF")
    assert at.download_button(key="analytics.pdf_download")


# ---------------------------------------------------------------- overview


def test_the_overview_keeps_its_filters_across_runs(signed_in: Any) -> None:
    at = signed_in("operator", page="overview")
    team = at.multiselect(key="overview.team")
    assert team.options
    team.select(team.options[0]).run()
    _no_problems(at)
    picked = at.multiselect(key="overview.team").value
    at.run()  # what a live refresh reruns: the filters stay
    assert at.multiselect(key="overview.team").value == picked
    _no_problems(at)


def test_a_silence_preview_counts_what_it_would_mute(signed_in: Any, demo_db: Any) -> None:
    with demo_db.read() as conn:
        before = len(list_silences(conn, SYSTEM))
    at = signed_in("operator", page="silences")
    at.text_area(key="silences.matcher").input('severity == "critical"').run()
    at.button(key="silences.preview").click().run(timeout=120)
    _no_problems(at)
    shown = {m.label: m.value for m in at.metric}
    assert int(shown["Alerts it mutes"].replace(",", "")) > 0
    assert "Pages it saves" in shown
    with demo_db.read() as conn:
        assert len(list_silences(conn, SYSTEM)) == before  # a preview saves nothing
