"""Channels: Apprise checks each URL on save, URLs are encrypted at rest and only shown masked."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from engine.auth.keys import create_key
from engine.cli import main
from engine.crypto import decrypt
from engine.notify.errors import ChannelUrlError
from engine.notify.transport import check_url, mask_url
from engine.store.models import AuditEntry, Channel, Notification

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general"
TWILIO = "twilio://AC1234567890123456789012345678901234:tokentokentokentokentokentoken12@15551234567/15557654321"


@pytest.mark.parametrize(
    ("url", "kind", "error"),
    [
        ("json://127.0.0.1:8080/hook", "webhook", None),
        ("form://127.0.0.1/hook", "webhook", None),
        ("mailto://127.0.0.1:8025?from=a@example.com&to=b@example.com", "email", None),
        ("mqtt://127.0.0.1:1883/klaxon/alerts", "webhook", None),
        (SLACK, "chat", None),
        ("tgram://123456789:abcdefg_hijklmnop/12315544", "chat", None),
        (TWILIO, "sms", None),
        ("http://example.com/hook", None, "use json://, form:// or xml://"),
        ("not a url", None, "is not a URL"),
        ("nope://somewhere", None, "'nope://' is not a service Apprise supports"),
        ("slack://only-one-token", None, "Apprise refuses this slack:// URL"),
        ("mailto://", None, "Apprise refuses this mailto:// URL"),
        ("   ", None, "give an Apprise URL"),
    ],
)
def test_apprise_decides_which_urls_are_accepted(
    url: str, kind: str | None, error: str | None
) -> None:
    if error is None:
        assert check_url(url).kind == kind
        return
    with pytest.raises(ChannelUrlError, match=r"^url: ") as info:
        check_url(url)
    assert error in str(info.value)
    assert info.value.field == "url"


@pytest.mark.parametrize(
    ("url", "secret", "shown"),
    [
        ("json://admin:hunter2@127.0.0.1/p", "hunter2", "json://admin:****@127.0.0.1/p"),
        ("json://127.0.0.1/p?+X-Api-Key=s3cr3t&-team=ops", "s3cr3t", "-team=ops"),
        ("json://127.0.0.1/p?token=abc123def", "abc123def", "json://127.0.0.1/p"),
        (SLACK, "TIiajkdnlazkcOXrIdevi7FQ", "slack://"),
        (
            "mailto://bob:pa55word@127.0.0.1:25?from=a@example.com&to=b@example.com",
            "pa55word",
            "bob:****@",
        ),
        (TWILIO, "tokentokentokentokentokentoken12", "twilio://"),
        ("nonsense://user:topsecret@host/x?key=k3y", "topsecret", "nonsense://user:****@host"),
    ],
)
def test_masked_urls_hide_passwords_tokens_and_header_values(
    url: str, secret: str, shown: str
) -> None:
    masked = mask_url(url)
    assert secret not in masked
    assert shown in masked


def test_a_channel_is_encrypted_at_rest_listed_masked_and_audited_masked(api, db) -> None:
    url = "json://admin:hunter2@127.0.0.1:9/hook?+Authorization=Bearer%20tok3n"
    r = api.post("/api/v1/channels", json={"name": "ops_hook", "url": url, "description": "ops"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["kind"] == "webhook"
    assert "hunter2" not in created["url"]
    assert "tok3n" not in created["url"]
    listed = api.get("/api/v1/channels").json()
    assert [c["name"] for c in listed] == ["ops_hook"]
    assert listed[0]["url"] == created["url"]
    with db.read() as conn:
        row = conn.execute(select(Channel.url_encrypted, Channel.url_masked)).one()
        audit = conn.execute(select(AuditEntry.action, AuditEntry.after)).all()
    assert "hunter2" not in row.url_encrypted
    assert decrypt(row.url_encrypted) == url
    assert [a.action for a in audit if a.action.startswith("channel.")] == ["channel.create"]
    assert all("hunter2" not in str(a.after) and "tok3n" not in str(a.after) for a in audit)


def test_a_bad_url_is_422_naming_url_and_stores_nothing(api) -> None:
    r = api.post(
        "/api/v1/channels", json={"name": "ops_hook", "url": "https://hooks.example.com/x"}
    )
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False
    assert body["status"] == 422
    assert body["field"] == "url"
    assert "json://" in body["error"]
    assert api.get("/api/v1/channels").json() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # checks made before the store
@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"name": "Ops-Hook", "url": "json://127.0.0.1/x"}, 422, "name"),
        ({"name": "ops", "url": "json://127.0.0.1/x", "kind": "pager"}, 422, "kind"),
        (
            {"name": "ops", "url": "json://127.0.0.1/x", "rate_limit_per_min": 0},
            422,
            "rate_limit_per_min",
        ),
        (
            {"name": "ops", "url": "json://127.0.0.1/x", "grouping": {"interval_s": -1}},
            422,
            "grouping.interval_s",
        ),
        (
            {"name": "ops", "url": "json://127.0.0.1/x", "grouping": {"every": 5}},
            422,
            "grouping.every",
        ),
        ({"name": "ops"}, 422, "url"),
    ],
)
def test_bad_channel_settings_are_422_naming_the_field(api, payload, status, field) -> None:
    r = api.post("/api/v1/channels", json=payload)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field


def test_names_are_unique_and_changes_and_removal_work(api) -> None:
    assert (
        api.post("/api/v1/channels", json={"name": "ops", "url": "json://127.0.0.1/x"}).status_code
        == 201
    )
    again = api.post("/api/v1/channels", json={"name": "ops", "url": "form://127.0.0.1/y"})
    assert again.status_code == 409
    assert again.json()["field"] == "name"
    r = api.patch(
        "/api/v1/channels/ops",
        json={"rate_limit_per_min": 5, "is_enabled": False, "url": "form://127.0.0.1/y"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["rate_limit_per_min"] == 5
    assert r.json()["is_enabled"] is False
    assert r.json()["url"] == "form://127.0.0.1/y"
    assert api.patch("/api/v1/channels/ops", json={"url": "http://x"}).json()["field"] == "url"
    assert (
        api.patch("/api/v1/channels/ops", json={"rate_limit_per_min": None}).json()[
            "rate_limit_per_min"
        ]
        is None
    )
    assert api.delete("/api/v1/channels/ops").status_code == 200
    missing = api.get("/api/v1/channels/ops")
    assert missing.status_code == 404
    assert missing.json()["field"] == "name"


def test_testing_a_channel_sends_one_message_and_records_it(api, http) -> None:
    api.post("/api/v1/channels", json={"name": "hook", "url": http.url()})
    r = api.post("/api/v1/channels/hook/test")
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    assert len(http.received) == 1
    assert "Test message for channel hook" in http.received[0].text
    sent = api.get("/api/v1/notifications", params={"transition": "test"}).json()["items"]
    assert [(n["status"], n["attempts"]) for n in sent] == [("sent", 1)]

    http.stop()
    down = api.post("/api/v1/channels/hook/test").json()
    assert down["ok"] is False
    assert "Connection" in down["error"]
    detail = api.get(f"/api/v1/notifications/{down['notification_id']}").json()
    assert detail["status"] == "dead"
    assert [a["ok"] for a in detail["attempt_log"]] == [False]


def test_only_integration_writers_manage_channels(api, db) -> None:
    reader = create_key(db, name="reader", scopes=["read"])
    headers = {"Authorization": f"Bearer {reader.token}"}
    r = api.post(
        "/api/v1/channels", json={"name": "ops", "url": "json://127.0.0.1/x"}, headers=headers
    )
    assert r.status_code == 403
    assert r.json()["permission"] == "integrations.write"


def test_delivery_failures_never_log_the_clear_url(make_pipeline, caplog) -> None:
    p = make_pipeline('rule source "{{ title }}"\n  when kind == "alert"\n  notify hook\nend\n')
    p.add_channel("hook", "json://robot:s3cr3tpw@127.0.0.1:9/hook")
    caplog.set_level(logging.DEBUG)
    p.fire("Disk full")
    assert p.deliver().failed == 1
    assert "s3cr3tpw" not in caplog.text
    assert "robot:****@127.0.0.1" in caplog.text


def test_the_cli_adds_lists_tests_and_deletes_channels(
    db, db_url, http, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("KLAXON_DATABASE_URL", db_url)

    def run(*argv: str) -> int:
        with pytest.raises(SystemExit) as done:
            main(list(argv))
        return int(done.value.code or 0)

    assert (
        run("channel", "add", "hook", http.url(path="/cli").replace("json://", "json://u:pw9@"))
        == 0
    )
    assert "added channel hook (webhook): json://u:****@127.0.0.1" in capsys.readouterr().out
    assert run("channel", "list") == 0
    assert "pw9" not in capsys.readouterr().out
    assert run("channel", "test", "hook") == 0
    assert "sent a test message to hook" in capsys.readouterr().out
    assert len(http.on("/cli")) == 1
    assert run("channel", "add", "bad", "http://example.com") == 2
    assert "klaxon: error: url: Apprise has no http:// service" in capsys.readouterr().err
    assert run("channel", "test", "missing") == 2
    assert run("channel", "delete", "hook") == 0
    with db.read() as conn:
        kinds = {n.transition for n in conn.execute(select(Notification.transition))}
    assert kinds == {"test"}
