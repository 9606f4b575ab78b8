"""The FastAPI application: `klaxon api` serves it (127.0.0.1:8080 by default)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api import (
    alerts,
    analytics,
    audit,
    auth,
    exports,
    incidents,
    ingest,
    keys,
    notify,
    ops,
    rules,
    silences,
    teams,
    users,
)
from engine.api.deps import Authenticator
from engine.api.errors import error_body, install
from engine.config import Settings
from engine.store.db import Database


class BodyLimit:
    """413 for bodies over the limit, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps(
            error_body(413, f"the body is larger than {self.limit} bytes", field="body")
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class Timing:
    """Counts requests by route and status and times them (a plain ASGI middleware: cheap)."""

    def __init__(self, app: ASGIApp, metrics: ops.Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.inc("klaxon_http_requests_total", {"path": path, "status": str(status)})
            self.metrics.observe("klaxon_http_request_seconds", time.perf_counter() - started)


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.closing = False
        app.state.writer.start()
        yield
        app.state.closing = True
        await app.state.writer.stop()

    app = FastAPI(
        title="Klaxon",
        version="1",
        description="Alerts in, the right people paged, noise out.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db or Database(settings.database_url)
    app.state.auth = Authenticator(app.state.db, settings.rate_limit_per_min)
    app.state.writer = ingest.IngestWriter(app.state.db)
    app.state.metrics = ops.Metrics()
    app.state.closing = False
    install(app)
    routers = (
        ops,
        ingest,
        alerts,
        rules,
        incidents,
        silences,
        auth,
        users,
        teams,
        audit,
        keys,
        notify,
        analytics,
        exports,
    )
    for module in routers:
        app.include_router(module.router)
    auth.install(app)  # user access tokens; every 401/403 audited

    app.add_middleware(Timing, metrics=app.state.metrics)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
