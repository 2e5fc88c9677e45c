"""Error bodies (every error, whatever the route, is an :class:`ErrorResponse`) and the
health and readiness answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field


class ErrorField(BaseModel):
    field: str = Field(description="where: 'body.top', 'query.offset', 'path.gap_id', 'header.authorization'")
    reason: str


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable: validation_error, unauthorized, forbidden, not_found, conflict, "
                                  "payload_too_large, not_ready, internal_error, ...")
    message: str
    fields: list[ErrorField] = []
    request_id: str
    current: Optional[dict[str, Any]] = Field(None, description="on a 409: the current state of what was written")


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    database: Optional[Literal["ok", "unavailable"]] = Field(None, description="whether the database answers now")
    version: Optional[str] = None
    ranker: Optional[str] = None
    loaded_at: Optional[datetime] = None
    message: str = ""
