"""Outreach outcomes: the stage an approach reached."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Optional

from pydantic import BaseModel, Field

from service.schemas.base import MAX_ID, MAX_TEXT, NO_NUL, Stage, Strict


class OutcomeCreate(Strict):
    enterprise_id: str = Field(min_length=1, max_length=MAX_ID, pattern=NO_NUL)
    gap_id: str = Field(min_length=1, max_length=MAX_ID, pattern=NO_NUL)
    stage: Stage
    date: dt.date = Field(description="when the stage was reached")
    reason: Optional[str] = Field(None, max_length=MAX_TEXT, pattern=NO_NUL, description="required for declined / lost")
    note: str = Field("", max_length=MAX_TEXT, pattern=NO_NUL)


class OutcomeOut(BaseModel):
    outcome_id: int
    enterprise_id: str
    gap_id: str
    stage: Stage
    previous_stage: Optional[Stage] = None
    date: dt.date
    reason: Optional[str] = None
    note: str = ""
    recorded_by: str
    recorded_at: datetime


class OutcomeList(BaseModel):
    outcomes: list[OutcomeOut]
