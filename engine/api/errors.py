"""Every API error in one JSON shape: {"ok": false, "error", "errors", "status", ...context}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dsl.errors import DslError, DslErrors
from engine.analytics.errors import AnalyticsError, AnalyticsQueryError, JobNotFoundError
from engine.auth.principal import PermissionDenied
from engine.normalize import UnknownSourceError
from engine.schema import EventValidationError
from engine.store.alerts import AlertNotFound, BadQuery, InvalidTransition
from engine.store.db import StoreError
from engine.store.incidents import IncidentNotFound
from engine.store.silences import SilenceError, SilenceNotFound


class ApiError(Exception):
    """Raised by routers for a 4xx with a message and context (field, line, ...)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []
        self.headers = headers
        self.context = context


def error_body(
    status: int, message: str, errors: list[Any] | None = None, **context: Any
) -> dict[str, Any]:
    return {"ok": False, "error": message, "errors": errors or [], "status": status, **context}


def _response(
    status: int,
    message: str,
    errors: list[Any] | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, errors, **context), status_code=status, headers=headers
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, err: ApiError) -> JSONResponse:
        return _response(err.status, err.message, err.errors, err.headers, **err.context)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        problems: list[tuple[str | None, str]] = []
        for e in err.errors():
            loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header")]
            problems.append((".".join(loc) or None, str(e.get("msg", "invalid"))))
        field, reason = problems[0] if problems else (None, "invalid request")
        message = f"{field}: {reason}" if field else reason
        errors = [{"field": f, "message": m} for f, m in problems]
        return _response(422, message, errors, field=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        message = err.detail if isinstance(err.detail, str) else "request failed"
        return _response(err.status_code, message, headers=getattr(err, "headers", None))

    @app.exception_handler(EventValidationError)
    async def _event(_: Request, err: EventValidationError) -> JSONResponse:
        return _response(
            422,
            str(err),
            [{"field": err.field, "index": err.index, "message": err.reason}],
            field=err.field,
            index=err.index,
        )

    @app.exception_handler(UnknownSourceError)
    async def _source(_: Request, err: UnknownSourceError) -> JSONResponse:
        return _response(404, str(err), field="source")

    @app.exception_handler(DslErrors)
    async def _dsl_many(_: Request, err: DslErrors) -> JSONResponse:
        errors = [e.to_dict() for e in err.errors]
        first = err.errors[0]
        return _response(
            422,
            f"the rules do not compile: {len(errors)} error{'s' if len(errors) != 1 else ''}",
            errors,
            field="text",
            line=first.line,
            column=first.column,
        )

    @app.exception_handler(DslError)
    async def _dsl(_: Request, err: DslError) -> JSONResponse:
        return _response(
            422, err.full_message, [err.to_dict()], field="text", line=err.line, column=err.column
        )

    @app.exception_handler(PermissionDenied)
    async def _denied(_: Request, err: PermissionDenied) -> JSONResponse:
        return _response(403, str(err), permission=err.permission)

    @app.exception_handler(AlertNotFound)
    async def _missing(_: Request, err: AlertNotFound) -> JSONResponse:
        return _response(404, str(err), field="id")

    @app.exception_handler(InvalidTransition)
    async def _conflict(_: Request, err: InvalidTransition) -> JSONResponse:
        return _response(409, str(err))

    @app.exception_handler(BadQuery)
    async def _bad(_: Request, err: BadQuery) -> JSONResponse:
        return _response(
            422, f"{err.field}: {err}", [{"field": err.field, "message": str(err)}], field=err.field
        )

    @app.exception_handler(SilenceError)
    async def _silence(_: Request, err: SilenceError) -> JSONResponse:
        return _response(
            422,
            str(err),
            err.errors or [{"field": err.field, "message": str(err)}],
            field=err.field,
        )

    @app.exception_handler(SilenceNotFound)
    @app.exception_handler(IncidentNotFound)
    async def _gone(_: Request, err: Exception) -> JSONResponse:
        return _response(404, str(err), field="id")

    @app.exception_handler(StoreError)
    async def _store(_: Request, err: StoreError) -> JSONResponse:
        return _response(503, f"the store is unavailable: {err}")

    @app.exception_handler(AnalyticsQueryError)
    async def _analytics_query(_: Request, err: AnalyticsQueryError) -> JSONResponse:
        return _response(
            422, f"{err.field}: {err}", [{"field": err.field, "message": str(err)}], field=err.field
        )

    @app.exception_handler(JobNotFoundError)
    async def _job(_: Request, err: JobNotFoundError) -> JSONResponse:
        return _response(404, str(err), field="id")

    @app.exception_handler(AnalyticsError)
    async def _analytics(_: Request, err: AnalyticsError) -> JSONResponse:
        return _response(503, f"analytics are unavailable: {err}")
