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
| the database cannot be reached or written (:func:`database_unavailable`) | 503 | database_unavailable |
| anything else | 500 | internal_error (request id only; the traceback goes to the server log) |

Every 503 carries ``Retry-After`` and a message without filesystem paths (they go to the log). An
HTTP request the server cannot parse (a URL over 65,535 bytes, a malformed request line) is
answered in the same shape by the uvicorn protocol classes at the end of this module.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import uuid
from http import HTTPStatus

import h11
import psycopg
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from matcher.errors import (
    ArtifactCorruptError, ArtifactNotFoundError, ConfigError, MatcherError, ModelNotFoundError, SchemaError,
    UnknownEntityError, ValidationFailedError,
)
from matcher.store.errors import ConflictError, DatabaseUnavailableError, InvalidInputError, SchemaOutOfDateError

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional in uvicorn
    HttpToolsProtocol = None

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
    (DatabaseUnavailableError, 503, "database_unavailable"),
    (ConfigError, 500, "internal_error"),
]
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 414: "uri_too_long",
              415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests", 503: "not_ready"}
RETRY_AFTER_S = 5  # what a 503 asks the client to wait
DATABASE_DOWN = "the database is unavailable; retry in a few seconds (GET /ready reports it)"
# SQLite result codes (low byte) that mean the file cannot be written or read now, not a bug.
SQLITE_UNAVAILABLE = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL,
                      sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# ... of those, the ones that stay with the connection that met them (opened read-only, or its file
# handle gone): the pool reconnects after them. A busy or full database needs no new connection.
SQLITE_RECONNECT = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
# PostgreSQL SQLSTATEs outside psycopg's OperationalError that mean "not writable here now":
# 25006 read-only transaction (a standby after failover, or default_transaction_read_only).
PG_UNAVAILABLE = {"25006"}
_PATH = re.compile(r"(?<![\w:/.~-])(?:/[^\s'\"/:;,()\[\]]+){2,}")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or written at the moment (503, retry),
    rather than a bug (500): connection refused or lost, pool exhausted, a read-only or locked
    database, an administrator's shutdown."""
    if isinstance(exc, (DatabaseUnavailableError, sa.exc.TimeoutError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            return True
        exc = exc.orig
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(exc, sqlite3.OperationalError) if code is None else (code & 0xFF) in SQLITE_UNAVAILABLE
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) or getattr(exc, "sqlstate", None) in PG_UNAVAILABLE


def watch_database(engine: sa.Engine) -> None:
    """Treat "cannot write / cannot open" errors as disconnects on ``engine``, so its pool opens
    fresh connections afterwards: a SQLite connection opened while the file was read-only stays
    read-only, and a PostgreSQL session keeps the read-only default it started with. PostgreSQL's
    lost connections are recognised by SQLAlchemy itself (and pre-ping tests each checkout)."""

    @sa.event.listens_for(engine, "handle_error")
    def _reconnect_after(context) -> None:
        error = context.original_exception
        code = getattr(error, "sqlite_errorcode", None)
        sticks = (code & 0xFF) in SQLITE_RECONNECT if code is not None else getattr(error, "sqlstate", None) in PG_UNAVAILABLE
        if sticks and not context.is_disconnect:
            context.is_disconnect = True


def public_message(text: str) -> str:
    """``text`` without absolute filesystem paths (each becomes its last two parts, e.g. the version
    and the file), for responses: paths tell a caller how the server is laid out; the log keeps them."""
    return _PATH.sub(lambda m: "…/" + "/".join(m.group(0).rstrip("/").split("/")[-2:]), text)


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
    elif isinstance(exc, DatabaseUnavailableError):
        log.warning("request %s: %s", request_id(request), exc)
        message = DATABASE_DOWN
    elif status == 503 and isinstance(exc, (ArtifactNotFoundError,)):
        message = public_message(f"no published model; run the nightly job ({exc})")
    elif status == 503:
        message = public_message(str(exc))
    else:
        message = str(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
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


async def on_database_error(request: Request, exc: sa.exc.SQLAlchemyError) -> JSONResponse:
    """A database error: 503 with ``Retry-After`` when the database is down, unwritable or busy
    (the service recovers by itself when it is back); any other is a bug (500). Answered here, not
    by the last-resort handler, so the connection stays open for the client's next request."""
    if not database_unavailable(exc):
        return await on_unexpected(request, exc)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    log.warning("request %s: database unavailable (%s: %s)", request_id(request), type(exc).__name__, reason[0] if reason else "")
    return error_response(503, "database_unavailable", DATABASE_DOWN, request_id(request),
                          headers={"Retry-After": str(RETRY_AFTER_S)})


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("request %s failed", request_id(request))
    return error_response(500, "internal_error", "internal error; quote the request id", request_id(request))


def install(app: FastAPI) -> None:
    app.add_exception_handler(MatcherError, on_matcher_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ValidationError, on_model_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(sa.exc.SQLAlchemyError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)


# --- requests the HTTP server rejects before the application sees them ---------------------------

MAX_URL_BYTES = 65_535  # httptools (llhttp) cannot parse a longer request target


def protocol_error(url_bytes: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) in the error shape for a request the server could not parse."""
    rid = uuid.uuid4().hex[:16]
    if url_bytes > MAX_URL_BYTES:
        status, code = 414, "uri_too_long"
        message = (f"the URL is longer than {MAX_URL_BYTES:,} bytes; send long inputs in a request body "
                   "(POST /v1/prospects/search, POST /v1/shortlists)")
    else:
        status, code, message = 400, "bad_request", "malformed HTTP request (request line or headers)"
    body = json.dumps(error_body(status, code, message, rid)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"x-request-id", rid.encode()), (b"x-content-type-options", b"nosniff"),
               (b"cache-control", b"no-store"), (b"connection", b"close")]
    return status, headers, body


class ShapedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; a request it cannot parse is answered in the error shape."""

    def send_400_response(self, msg: str) -> None:
        status, headers, body = protocol_error(0)
        for event in (h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


if HttpToolsProtocol is not None:
    class ShapedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol (its default when installed); a request it cannot parse is
        answered in the error shape, a URL too long for the parser with 414."""

        def send_400_response(self, msg: str) -> None:
            status, headers, body = protocol_error(len(getattr(self, "url", b"") or b""))
            head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
            for name, value in [*self.server_state.default_headers, *headers]:
                head.append(name + b": " + value + b"\r\n")
            self.transport.write(b"".join(head) + b"\r\n" + body)
            self.transport.close()
else:  # httptools is optional in uvicorn: h11 serves then
    ShapedHttpToolsProtocol = None

# For uvicorn's ``http=``: the protocol 'auto' would pick, answering unparsable requests in the error shape.
HTTP_PROTOCOL = "service.errors:" + ("ShapedHttpToolsProtocol" if ShapedHttpToolsProtocol else "ShapedH11Protocol")
