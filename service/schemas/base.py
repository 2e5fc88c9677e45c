"""Types and limits every API shape uses: the domain vocabulary as ``Literal`` types
(``matcher/domain.py``), size limits, valid stored text, and :class:`Strict` request bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from matcher import domain
from matcher.domain import ITEM_STATUSES, REASON_CODES, ROLES, SHORTLIST_STATUSES, VERDICTS
from matcher.filters import MAX_FILTER_VALUE  # noqa: F401  (one filter value: the filters' own limit)

Lang = Literal["en", "zh"]
# The vocabulary comes from matcher/domain.py; these are its types for requests and responses.
Role = Literal[ROLES]
Verdict = Literal[VERDICTS]
ItemStatus = Literal[ITEM_STATUSES]
ShortlistStatus = Literal[SHORTLIST_STATUSES]
ReasonCode = Literal[REASON_CODES]
Stage = Literal[domain.STAGES]

MAX_TOP = 200  # largest page / shortlist
MAX_OFFSET = 10_000
MAX_TEXT = 2_000  # free-text need, comment, note
MAX_ID = 200  # ids in paths and bodies
NO_NUL = r"^[^\x00]*$"  # stored text: no NUL characters


def check_text(value: str, where: str = "value") -> str:
    """Text that is stored must be valid: no NUL characters, no unpaired surrogates."""
    if "\x00" in value:
        raise _invalid(where, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(where, "is not valid Unicode text") from None
    return value


def _invalid(where: str, reason: str) -> Exception:
    from matcher.store.errors import InvalidInputError

    return InvalidInputError(where, reason)


class Strict(BaseModel):
    """Request bodies: unknown fields are an error (a typo never silently does nothing); text is
    valid Unicode without NUL characters."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _valid_text(cls, value):
        # Stored text must encode as UTF-8 (JSON allows unpaired surrogates; databases do not).
        for text in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            try:
                str(text).encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not valid Unicode text (unpaired surrogate)") from None
        return value
