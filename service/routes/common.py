"""What every ``/v1`` route module shares: the error responses it documents, path and query
types, the service state, the prospect filters of a query string and a page of a ranked list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import numpy as np
import pandas as pd
from fastapi import Depends, Path, Query, Request, Response

from matcher.filters import FIRST_YEAR, LAST_YEAR, MAX_EMPLOYEES, Filters
from matcher.store.errors import InvalidInputError
from matcher.store.repo import Actor
from service import schemas as api
from service.auth import visible_chains
from service.holder import Loaded, RankedEntry
from service.state import ServiceState

PREFIX = "/v1"
ERRORS = {
    401: {"model": api.ErrorResponse, "description": "missing, unknown or revoked API key"},
    403: {"model": api.ErrorResponse, "description": "the key's role or chains do not allow this"},
    404: {"model": api.ErrorResponse, "description": "unknown id"},
    422: {"model": api.ErrorResponse, "description": "invalid input: the fields at fault"},
    429: {"model": api.ErrorResponse, "description": "the key's request quota is used up (with Retry-After); "
                                                     "admin keys have none"},
    503: {"model": api.ErrorResponse, "description": "no artifact version loaded yet, or the database is unavailable "
                                                     "(with Retry-After)"},
}
WRITE_ERRORS = {**ERRORS, 409: {"model": api.ErrorResponse, "description": "conflict with the current state (included)"},
                413: {"model": api.ErrorResponse, "description": "request body too large"}}

IntId = Annotated[int, Path(ge=1, le=2_147_483_647)]
TopQuery = Annotated[int, Query(ge=1, le=api.MAX_TOP, description="page size")]
OffsetQuery = Annotated[int, Query(ge=0, le=api.MAX_OFFSET)]
LangQuery = Annotated[api.Lang, Query(description="language of explanations and reasons")]
TextQuery = Annotated[Optional[str], Query(max_length=api.MAX_ID, pattern=api.NO_NUL)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def svc(request: Request) -> ServiceState:
    return request.app.state.svc


def no_store(response: Response) -> None:
    """Dependency: the response holds shortlists and reviews; no cache (browser or proxy) keeps it."""
    response.headers["Cache-Control"] = "no-store"


NO_STORE = [Depends(no_store)]


def sees_chain(actor: Actor, chain_id: str) -> bool:
    """Whether the caller may see a chain's shortlists and exclusions (a chain leader: their own)."""
    chains = visible_chains(actor)
    return chains is None or chain_id in chains


def clean(value: str | None, where: str) -> str | None:
    """Strings that reach the database must be valid text (no NUL, no lone surrogates)."""
    if value is not None:
        api.check_text(value, where)
    return value


def list_limit(name: str) -> int:
    """The most values ``ProspectFilters.<name>`` accepts (one limit for body and query)."""
    for meta in api.ProspectFilters.model_fields[name].metadata:
        if getattr(meta, "max_length", None) is not None:
            return int(meta.max_length)
    return 50


async def query_filters(
    country: Annotated[list[str], Query(description="any of these countries; repeatable")] = [],  # noqa: B006
    province: Annotated[list[str], Query(description="any of these provinces/states; repeatable")] = [],  # noqa: B006
    min_employees: Annotated[Optional[int], Query(ge=0, le=MAX_EMPLOYEES)] = None,
    max_employees: Annotated[Optional[int], Query(ge=0, le=MAX_EMPLOYEES)] = None,
    founded_after: Annotated[Optional[int], Query(ge=FIRST_YEAR, le=LAST_YEAR)] = None,
    qualification: Annotated[list[str], Query(description="all of these qualifications; repeatable")] = [],  # noqa: B006
    include_local: bool = False,
    include_closed: bool = False,
) -> api.ProspectFilters:
    for name, values in (("country", country), ("province", province), ("qualification", qualification)):
        limit = list_limit(name)
        if len(values) > limit:
            raise InvalidInputError(f"query.{name}", f"at most {limit} values (got {len(values)})")
        longest = max(values, key=len, default="")
        if len(longest) > api.MAX_FILTER_VALUE:
            raise InvalidInputError(f"query.{name}", f"each value at most {api.MAX_FILTER_VALUE} characters "
                                                     f"(value {values.index(longest) + 1} has {len(longest)})")
    return api.ProspectFilters(country=country, province=province, min_employees=min_employees, max_employees=max_employees,
                               founded_after=founded_after, qualification=qualification, include_local=include_local,
                               include_closed=include_closed)


def to_filters(f: api.ProspectFilters, excluded: frozenset = frozenset()) -> Filters:
    return Filters.model_validate({**f.model_dump(), "exclude_ids": tuple(sorted(excluded))})


def page(state: ServiceState, loaded: Loaded, entry: RankedEntry, f: api.ProspectFilters, offset: int, top: int,
         lang: str, route: str, actor: Actor) -> api.ProspectPage:
    positions = list(range(offset, min(offset + top, entry.total)))
    reasons = entry.reasons(loaded.catalog, positions, lang) if positions else []
    results = [{**row, "reasons": r} for row, r in zip(entry.rows_at(positions), reasons)]
    state.writer.log(entry, route, offset, top, actor.key_id, actor.request_id)
    gap = entry.gap
    return api.ProspectPage(
        version=loaded.version, list_version=entry.list_version, ranker=loaded.catalog.ranker_name,
        query={"gap_id": gap.get("gap_id"), "text": gap["text"], "chain_id": gap.get("chain_id"), "segment_id": gap.get("segment_id")},
        filters=f, lang=lang, total=entry.total, offset=offset, top=top, excluded=len(entry.filters.exclude_ids),
        results=results,
    )


def json_value(v):
    """A table cell as JSON: missing values as None, times as ISO text, numpy scalars as plain
    numbers, lists as lists of strings."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, (pd.Timestamp, datetime)):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple, np.ndarray)):
        return [str(x) for x in v]
    return v
