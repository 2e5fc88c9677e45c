"""Which enterprises a query may return: one model, with one set of rules, for every way filters
come in (CLI options, the batch file, the API's query string and bodies).

The limits are the API's: a founding year from 1000 to 3000, employee counts from 0 to ten
million, at most 50 countries or provinces and 20 qualifications of at most 200 characters each.
A wrong value is an error naming the field (:func:`validate_filters`), never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Optional

from pydantic import (
    AliasChoices, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError,
    field_validator,
)

from matcher.errors import SchemaError

MAX_FILTER_VALUE = 200  # characters of one filter value (a country, province or qualification)
MAX_PLACES = 50  # countries, or provinces, in one filter
MAX_QUALIFICATIONS = 20
MAX_EMPLOYEES = 10_000_000
FIRST_YEAR, LAST_YEAR = 1000, 3000  # ``founded_after`` bounds
NO_NUL = r"^[^\x00]*$"

FilterValue = Annotated[StrictStr, Field(max_length=MAX_FILTER_VALUE, pattern=NO_NUL)]
Employees = Optional[Annotated[StrictInt, Field(ge=0, le=MAX_EMPLOYEES)]]


class Filters(BaseModel):
    """Which enterprises may be returned. Repeated values of one field are alternatives, except
    ``qualifications``, where an enterprise must hold all of them.

    Immutable and hashable (a catalog caches one mask per distinct filter). Each list field also
    accepts the singular name the API and the batch file use (``country`` for ``countries``) and
    a single string for a one-value list.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    countries: tuple[FilterValue, ...] = Field(
        (), max_length=MAX_PLACES, validation_alias=AliasChoices("countries", "country"))
    provinces: tuple[FilterValue, ...] = Field(
        (), max_length=MAX_PLACES, validation_alias=AliasChoices("provinces", "province"))
    min_employees: Employees = None
    max_employees: Employees = None
    founded_after: Optional[Annotated[StrictInt, Field(ge=FIRST_YEAR, le=LAST_YEAR)]] = None
    qualifications: tuple[FilterValue, ...] = Field(
        (), max_length=MAX_QUALIFICATIONS, validation_alias=AliasChoices("qualifications", "qualification"))
    include_local: StrictBool = False
    include_closed: StrictBool = False
    exclude_ids: tuple[str, ...] = ()

    @field_validator("countries", "provinces", "qualifications", mode="before")
    @classmethod
    def _one_value(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    def is_default(self) -> bool:
        return self == Filters(include_local=self.include_local, include_closed=self.include_closed)


def validate_filters(data: Mapping[str, object], defaults: Filters | None = None) -> Filters:
    """``data`` (field names or their singular aliases) as :class:`Filters`, the fields it does
    not name taken from ``defaults``.

    Raises ``SchemaError`` naming every field at fault and what it accepts, e.g.
    ``field 'founded_after': Input should be greater than or equal to 1000 (got 5)``.
    """
    try:
        given = Filters.model_validate(data)
    except ValidationError as exc:
        raise SchemaError("; ".join(
            f"field '{'.'.join(str(part) for part in error['loc'])}': {error['msg']}"
            + (f" (got {error['input']!r})" if _scalar(error) else "")
            for error in exc.errors()
        )) from None
    if defaults is None:
        return given
    return defaults.model_copy(update={name: getattr(given, name) for name in given.model_fields_set})


def _scalar(error: dict) -> bool:
    """Whether an error's input is a short value worth quoting (not a list, not an unknown key)."""
    return error["type"] != "extra_forbidden" and not isinstance(error["input"], (list, tuple, dict))
