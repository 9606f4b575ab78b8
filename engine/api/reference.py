"""Write docs/api.md from the app's own OpenAPI schema: `python -m engine.api.reference`.

The reference lists every route with its summary, grouped by area; tests/docs checks that
docs/api.md and the app agree, so regenerate it after adding or removing a route.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

INTRO = """# The HTTP API

`klaxon api` serves it (default `http://127.0.0.1:8080`); the OpenAPI schema is at
`/api/v1/openapi.json` and an interactive explorer at `/api/v1/docs`. This file is generated
by `python -m engine.api.reference`.

**Authentication.** Every route except `/health/*` answers 401 without credentials (Prometheus
scrapes `/metrics` with a `read` key as its bearer token). Integrations
send an API key (`klaxon apikey create NAME`) as `Authorization: Bearer KEY`; a key's scopes
limit what it may do. People log in with `POST /api/v1/auth/login` and send the short-lived
access token the same way; `POST /api/v1/auth/refresh` rotates the refresh token.

**Errors.** A refused request answers `{"ok": false, "status": CODE, "error": MESSAGE,
"field": NAME}` with a 4xx status: 400/422 name the field at fault, 401 and 403 say what is
missing, 404 names what was not found, 413 a body over `KLAXON_MAX_BODY_BYTES`, 429 a key over
its rate limit (with `Retry-After`). Nothing of a refused request is stored.

**Lists** answer `{"items": [...], "next": CURSOR|null}`; pass `cursor=CURSOR` for the next
page. Times are ISO 8601 in UTC; durations are seconds.
"""

AREAS = (
    ("Health and operations", ("/health", "/metrics", "/api/v1/stream")),
    ("Ingest", ("/api/v1/ingest", "/api/v1/events")),
    ("Alerts", ("/api/v1/alerts",)),
    ("Rules", ("/api/v1/rules",)),
    ("Incidents", ("/api/v1/incidents",)),
    ("Silences", ("/api/v1/silences",)),
    ("Sign-in and accounts", ("/api/v1/auth", "/api/v1/users", "/api/v1/teams", "/api/v1/keys")),
    ("Audit", ("/api/v1/audit",)),
    (
        "Notifications and on-call",
        (
            "/api/v1/channels",
            "/api/v1/notifications",
            "/api/v1/escalation-policies",
            "/api/v1/schedules",
            "/api/v1/oncall",
            "/api/v1/notify-settings",
        ),
    ),
    ("Analytics", ("/api/v1/analytics",)),
    ("Backtests, exports and reports", ("/api/v1/backtest", "/api/v1/exports", "/api/v1/reports")),
)


def _area(path: str) -> str:
    for name, prefixes in AREAS:
        if any(path == p or path.startswith(p + "/") for p in prefixes):
            # /api/v1/silences/preview is a backtest of a silence: keep it with silences
            return name
    return "Other"


def render(schema: dict[str, Any]) -> str:
    grouped: dict[str, list[str]] = {name: [] for name, _ in AREAS}
    grouped["Other"] = []
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            summary = op.get("summary") or ""
            grouped[_area(path)].append(f"| `{method.upper()} {path}` | {summary} |")
    out = [INTRO]
    for name, rows in grouped.items():
        if rows:
            out.append(f"\n## {name}\n\n| route | does |\n|---|---|\n" + "\n".join(rows) + "\n")
    return "".join(out)


def main() -> int:
    from engine.api.app import create_app
    from engine.store.db import Database

    text = render(create_app(db=Database("sqlite://")).openapi())
    target = Path(__file__).resolve().parents[2] / "docs" / "api.md"
    if sys.argv[1:] == ["--stdout"]:
        sys.stdout.write(text)
    else:
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
