"""Canonical columns of the enterprise table and the rules every row must satisfy.

Column names are constants here, not literals scattered through the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ENTERPRISE_ID = "enterprise_id"
NAME = "name"
DESCRIPTION = "description"
TAGS = "tags"
INDUSTRY_CODE = "industry_code"
CITY = "city"
PROVINCE = "province"
COUNTRY = "country"
LAT = "lat"
LON = "lon"
FOUNDED_YEAR = "founded_year"
EMPLOYEES = "employees"
REGISTERED_CAPITAL = "registered_capital"
REVENUE = "revenue"
REVENUE_GROWTH = "revenue_growth"
EMPLOYEE_GROWTH = "employee_growth"
PATENTS = "patents"
RD_INTENSITY = "rd_intensity"
LAST_FUNDING_DATE = "last_funding_date"
QUALIFICATIONS = "qualifications"
RISK_FLAGS = "risk_flags"
STATUS = "status"
IS_LOCAL = "is_local"
UPDATED_AT = "updated_at"

# Derived by ingest.
STATUS_CLASS = "status_class"
CONTENT_HASH = "content_hash"
PROFILE_HASH = "profile_hash"
SOURCE_ROW = "source_row"
FAISS_ID = "faiss_id"

Kind = Literal["str", "int", "float", "bool", "date", "list"]


@dataclass(frozen=True)
class Column:
    """One canonical column: its type, whether a row needs it, and its valid range."""

    name: str
    kind: Kind
    required: bool = False
    min: float | None = None
    max: float | None = None


COLUMNS: tuple[Column, ...] = (
    Column(ENTERPRISE_ID, "str", required=True),
    Column(NAME, "str", required=True),
    Column(DESCRIPTION, "str", required=True),
    Column(TAGS, "list"),
    Column(INDUSTRY_CODE, "str"),
    Column(CITY, "str"),
    Column(PROVINCE, "str"),
    Column(COUNTRY, "str"),
    Column(LAT, "float", min=-90, max=90),
    Column(LON, "float", min=-180, max=180),
    Column(FOUNDED_YEAR, "int", min=1800, max=2100),
    Column(EMPLOYEES, "int", min=0, max=5_000_000),
    Column(REGISTERED_CAPITAL, "float", min=0),
    Column(REVENUE, "float", min=0),
    # Growth rates are fractions: 0.48 means +48 %; -1 is the floor (everything lost).
    Column(REVENUE_GROWTH, "float", min=-1, max=100),
    Column(EMPLOYEE_GROWTH, "float", min=-1, max=100),
    Column(PATENTS, "int", min=0, max=1_000_000),
    Column(RD_INTENSITY, "float", min=0, max=10),
    Column(LAST_FUNDING_DATE, "date"),
    Column(QUALIFICATIONS, "list"),
    Column(RISK_FLAGS, "list"),
    Column(STATUS, "str"),
    Column(IS_LOCAL, "bool"),
    Column(UPDATED_AT, "date"),
)
COLUMN_BY_NAME = {c.name: c for c in COLUMNS}
CANONICAL_COLUMNS = tuple(c.name for c in COLUMNS)
REQUIRED_COLUMNS = tuple(c.name for c in COLUMNS if c.required)
LIST_COLUMNS = tuple(c.name for c in COLUMNS if c.kind == "list")

# Fields that make up the text we embed and index. Extra source columns (for example the
# YC tags, which are the labels of the real-data benchmark) never reach it.
PROFILE_FIELDS = (NAME, DESCRIPTION, TAGS)

# Canonical lifecycle classes; the source's own status string is kept in STATUS.
STATUS_CLASSES = ("operating", "closed", "acquired", "listed", "unknown")
DEFAULT_STATUS_MAP = {
    "operating": "operating",
    "active": "operating",
    "in business": "operating",
    "存续": "operating",
    "在业": "operating",
    "closed": "closed",
    "inactive": "closed",
    "dissolved": "closed",
    "deregistered": "closed",
    "revoked": "closed",
    "注销": "closed",
    "吊销": "closed",
    "acquired": "acquired",
    "merged": "acquired",
    "listed": "listed",
    "public": "listed",
    "ipo": "listed",
}
# Enterprises of these classes are never offered as prospects.
NOT_PROSPECTS = ("closed",)
