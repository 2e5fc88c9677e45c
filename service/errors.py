"""One error shape for every error, and the one place errors become HTTP statuses.

``{"error": {"code", "message", "fields": [{"field", "reason"}], "request_id", "current"?}}``

| error | status | code |
|---|---|---|
| request validation (FastAPI) / pydantic ``ValidationError`` in a handler / ``InvalidInputError`` / ``SchemaError`` | 422 | validation_error |
| ``AuthenticationError`` (missing or wrong key) | 401 | unauthorized |
| ``PermissionDeniedError`` (role or chain) | 403 | forbidden |
| ``UnknownEntityError`` | 404 | not_found |
| ``ConflictError`` (stale review, stage going back) | 409 | conflict |
| ``PayloadTooLargeError`` | 413 | payload_too_large |
| ``ArtifactNotFoundError`` / ``ArtifactCorruptError`` / ``ModelNotFoundError`` / not loaded yet | 503 | not_ready |
| anything else | 500 | internal_error (request id only; the traceback goes to the server log) |
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from matcher.errors import (
    ArtifactCorruptError, ArtifactNotFoundError, ConfigError, MatcherError, ModelNotFoundError, SchemaError,
    UnknownEntityError, ValidationFailedError,
)
from matcher.store.errors import ConflictError, DatabaseUnavailableError, InvalidInputError, SchemaOutOfDateError

log = logging.getLogger("service.errors")


class AuthenticationError(MatcherError):
    """No API key, or one that is unknown or revoked."""


class PermissionDeniedError(MatcherError):
    """The key's role or chains do not allow this."""


class NotReadyError(MatcherError):
    """No artifact version is loaded yet."""


class PayloadTooLargeError(HTTPException):  # FastAPI's own: it passes body-reading errors of this type through
    """The request body is larger than the limit (raised while reading it)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")


STATUS = [  # most specific first
    (AuthenticationError, 401, "unauthorized"),
    (PermissionDeniedError, 403, "forbidden"),
    (UnknownEntityError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InvalidInputError, 422, "validation_error"),
    (SchemaError, 422, "validation_error"),
    (ValidationFailedError, 422, "validation_error"),
    (NotReadyError, 503, "not_ready"),
    (ArtifactNotFoundError, 503, "not_ready"),
    (ArtifactCorruptError, 503, "not_ready"),
    (ModelNotFoundError, 503, "not_ready"),
    (SchemaOutOfDateError, 503, "not_ready"),
    (DatabaseUnavailableError, 503, "not_ready"),
    (ConfigError, 500, "internal_error"),
]
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
              422: "validation_error", 429: "too_many_requests", 503: "not_ready"}


def request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "") or ""


def error_body(status: int, code: str, message: str, rid: str, fields: list[dict] | None = None,
               current: dict | None = None) -> dict:
    body = {"code": code, "message": message, "fields": fields or [], "request_id": rid}
    if current is not None:
        body["current"] = current
    return {"error": body}


def error_response(status: int, code: str, message: str, rid: str, fields: list[dict] | None = None,
                   current: dict | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, rid, fields, current), status_code=status, headers=headers)


def _location(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if part not in ("__root__",)) or "request"


async def on_matcher_error(request: Request, exc: MatcherError) -> JSONResponse:
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            break
    else:
        status, code = 400, "bad_request"
    fields = [{"field": exc.field, "reason": exc.reason}] if isinstance(exc, InvalidInputError) else []
    if status == 500:
        log.error("request %s failed: %s", request_id(request), exc)
        message = "internal error; quote the request id"
    elif status == 503 and isinstance(exc, (ArtifactNotFoundError,)):
        message = f"no published model; run the nightly job ({exc})"
    else:
        message = str(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, code, message, request_id(request), fields,
                          getattr(exc, "current", None) if status == 409 else None, headers)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = [{"field": _location(tuple(e.get("loc", ()))), "reason": str(e.get("msg", "invalid"))} for e in exc.errors()]
    summary = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:3])
    return error_response(422, "validation_error", f"invalid request: {summary}", request_id(request), fields)


async def on_model_validation_error(request: Request, exc: ValidationError) -> JSONResponse:
    """A pydantic model built inside a handler from request input: the input was bad (422), not the server."""
    fields = [{"field": _location(tuple(e.get("loc", ()))), "reason": str(e.get("msg", "invalid"))} for e in exc.errors()]
    summary = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:3])
    return error_response(422, "validation_error", f"invalid request: {summary}", request_id(request), fields)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = HTTP_CODES.get(exc.status_code, "error")
    status = exc.status_code
    if status == 400:  # FastAPI: a body that is not JSON
        status, code = 422, "validation_error"
        return error_response(status, code, f"invalid request body: {exc.detail}", request_id(request),
                              [{"field": "body", "reason": str(exc.detail)}])
    return error_response(status, code, str(exc.detail), request_id(request), headers=getattr(exc, "headers", None))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("request %s failed", request_id(request))
    return error_response(500, "internal_error", "internal error; quote the request id", request_id(request))


def install(app: FastAPI) -> None:
    app.add_exception_handler(MatcherError, on_matcher_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ValidationError, on_model_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
