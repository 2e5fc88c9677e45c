"""Value parsers for registry exports: money, numbers, counts, statuses, lists, flags, text, and
what every parser shares (missing cells, :class:`ParseFailure`, :func:`map_cells`). Dates are
:mod:`matcher.date_parsers`, the coded cells (province-or-country, GB/T 4754 industry codes)
:mod:`matcher.code_parsers`.

A mapping declares one per column (``parse: year``, ``parse: money``, ...). Each parser turns one
source cell into a clean value, ``None`` when the cell means "unknown" (``-``, ``未公开``, ...:
missing stays missing, never zero), or a :class:`ParseFailure` carrying the reason, which
validation puts in quarantine with the file, row and column.

Examples
--------
>>> parse_money("1000万元人民币")
MoneyValue(amount_cny=10000000.0, currency='CNY')
>>> parse_count("未公开") is None
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from matcher import schemas as S

PARSERS = ("text", "year", "date", "money", "count", "number", "status", "list", "industry_code", "country")

# Cells that mean "not known" in Chinese and English exports.
MISSING_TOKENS = frozenset(
    {"", "-", "--", "---", "—", "——", "－", "未公开", "暂无", "不详", "未知", "无数据", "暂无数据",
     "n/a", "na", "null", "none", "nan", "#n/a"}
)

# Approximate CNY per unit of each currency (late 2025). They only scale registered capital for
# ranking features; a mapping's ``currency_rates`` overrides or adds to them.
DEFAULT_CURRENCY_RATES: dict[str, float] = {
    "CNY": 1.0, "USD": 7.1, "HKD": 0.91, "EUR": 8.2, "GBP": 9.4, "JPY": 0.047, "TWD": 0.23,
    "SGD": 5.5, "AUD": 4.7, "CAD": 5.1, "CHF": 8.8, "KRW": 0.0050, "MOP": 0.88,
}
# Currency words as exports write them -> ISO code. A currency with a word here but no rate (for
# example 卢布) is a row-level problem until the mapping's ``currency_rates`` gives one.
CURRENCY_WORDS: dict[str, str] = {
    "": "CNY", "元": "CNY", "人民币": "CNY", "元人民币": "CNY", "人民币元": "CNY", "rmb": "CNY",
    "cny": "CNY", "¥": "CNY", "￥": "CNY",
    "美元": "USD", "美金": "USD", "usd": "USD", "$": "USD", "us$": "USD",
    "港元": "HKD", "港币": "HKD", "hkd": "HKD", "hk$": "HKD",
    "欧元": "EUR", "eur": "EUR", "€": "EUR",
    "英镑": "GBP", "gbp": "GBP", "£": "GBP",
    "日元": "JPY", "jpy": "JPY",
    "新台币": "TWD", "台币": "TWD", "twd": "TWD",
    "新加坡元": "SGD", "sgd": "SGD",
    "澳元": "AUD", "澳大利亚元": "AUD", "aud": "AUD",
    "加元": "CAD", "加拿大元": "CAD", "cad": "CAD",
    "瑞士法郎": "CHF", "chf": "CHF",
    "韩元": "KRW", "krw": "KRW",
    "澳门元": "MOP", "澳门币": "MOP", "mop": "MOP",
    "卢布": "RUB", "rub": "RUB",
}
# Chinese multipliers, longest first so 百万 wins over 万.
MONEY_UNITS: dict[str, float] = {
    "万亿": 1e12, "千万": 1e7, "百万": 1e6, "亿": 1e8, "万": 1e4, "千": 1e3, "百": 1e2,
}

TRUE_WORDS = frozenset({"是", "有", "y", "yes", "true", "1", "t", "√", "✓", "✔"})
FALSE_WORDS = frozenset({"否", "无", "n", "no", "false", "0", "f", "×", "✗"})

# Split list cells on Chinese and Latin separators (and line breaks inside a cell).
LIST_SEPARATORS = re.compile(r"[；;、,，|\n]+")

# C0 control characters other than tab, line feed and carriage return (PostgreSQL rejects NUL).
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PAGE_BREAKS = re.compile(r"[\x0b\x0c]")

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_MONEY = re.compile(rf"^(?P<pre>[^\d+\-.]*?)(?P<num>{_NUMBER})(?P<unit>万亿|千万|百万|亿|万|千|百)?(?P<post>.*)$")
_COUNT_SUFFIX = re.compile(r"\s*(人|名|位|个)$")


@dataclass(frozen=True)
class ParseFailure:
    """A source value a parser could not read; validation quarantines its row with ``reason``."""

    value: Any
    reason: str

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class MoneyValue:
    """An amount converted to CNY, with the currency the source wrote it in."""

    amount_cny: float
    currency: str


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN/NaT and the cells exports use for "unknown" (``-``, ``未公开``, ...)."""
    if type(value) is str:
        return len(value) < 8 and value.strip().casefold() in MISSING_TOKENS
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().casefold() in MISSING_TOKENS
    if isinstance(value, (list, tuple, np.ndarray, dict)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def clean_text(text: str) -> str:
    """``text`` without C0 control characters: vertical tab and form feed become a space (they
    separate words), the others (NUL, ...) are dropped; tab, newline and carriage return stay."""
    return CONTROL_CHARS.sub("", _PAGE_BREAKS.sub(" ", text))


def number_or_none(value: Any) -> float | None:
    """A cell that is already a number (not a bool) as a float, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


# ------------------------------------------------------------------------------------- money


def currency_table(rates: dict[str, float] | None) -> tuple[dict[str, str], dict[str, float]]:
    """(currency word -> code, code -> CNY rate), the defaults overridden by a mapping's rates.

    A rate key may be an ISO code (``USD``) or a word exports use (``卢布``); a new word becomes
    its own code.
    """
    words = dict(CURRENCY_WORDS)
    table = dict(DEFAULT_CURRENCY_RATES)
    for key, rate in (rates or {}).items():
        code = words.get(key.strip().casefold(), key.strip().upper())
        words.setdefault(key.strip().casefold(), code)
        table[code] = float(rate)
    return words, table


def parse_money(
    value: Any,
    unit: float = 1.0,
    currency: str = "CNY",
    words: dict[str, str] | None = None,
    rates: dict[str, float] | None = None,
) -> MoneyValue | ParseFailure | None:
    """An amount in CNY with its original currency.

    ``1000万元人民币`` -> 10,000,000 CNY; ``1.2亿元``; ``500万美元`` -> 35,500,000 CNY (USD);
    ``人民币1000万元``; ``1,000.5万``; a plain number is ``unit`` (for example 1e4 for a column
    in 万元) times the number, in ``currency``.
    """
    if is_missing(value):
        return None
    if words is None or rates is None:
        words, rates = currency_table(None)
    number = number_or_none(value)
    if number is not None:
        amount, code = number * unit, currency
    else:
        text = re.sub(r"[\s,，()（）]", "", str(value))
        found = _MONEY.match(text)
        if not found:
            return ParseFailure(value, "not an amount of money")
        amount = float(found.group("num")) * (MONEY_UNITS[found.group("unit")] if found.group("unit") else unit)
        word = (found.group("pre") + found.group("post")).casefold()
        code = words.get(word)
        if code is None and found.group("pre") and found.group("post"):
            code = words.get(found.group("post").casefold()) or words.get(found.group("pre").casefold())
        if code is None:
            return ParseFailure(value, f"unknown currency or unit '{found.group('pre') + found.group('post')}'")
        if code == "CNY" and not word:
            code = currency
    if not math.isfinite(amount):
        return ParseFailure(value, "not an amount of money")
    if code not in rates:
        return ParseFailure(
            value, f"no conversion rate for currency {code}; add it under currency_rates in the mapping"
        )
    return MoneyValue(amount * rates[code], code)


# ------------------------------------------------------------------------------------ numbers


def parse_number(value: Any) -> float | ParseFailure | None:
    """A number: ``1,234.5``, ``12%`` (as 12), missing words as ``None``."""
    if is_missing(value):
        return None
    number = number_or_none(value)
    if number is None:
        text = str(value).strip().replace(",", "").replace("，", "").rstrip("%").strip()
        try:
            number = float(text)
        except ValueError:
            return ParseFailure(value, "not a number")
    if not math.isfinite(number):
        return ParseFailure(value, "not a finite number")
    return number


def parse_count(value: Any) -> int | ParseFailure | None:
    """A whole count (``1234``, ``1,234人``, ``1234.0``); ``-``, ``未公开``, ``暂无`` are missing."""
    if is_missing(value):
        return None
    number = parse_number(_COUNT_SUFFIX.sub("", value.strip()) if isinstance(value, str) else value)
    if number is None or isinstance(number, ParseFailure):
        return ParseFailure(value, "not a count") if isinstance(number, ParseFailure) else None
    if not float(number).is_integer():
        return ParseFailure(value, "not a whole number")
    if number < 0:
        return ParseFailure(value, "a count cannot be negative")
    return int(number)


# ----------------------------------------------------------------------------------- statuses


def status_key(word: str) -> str:
    return str(word).strip().casefold().replace("（", "(").replace("）", ")")


def status_class_of(word: Any, table: dict[str, str]) -> str | None:
    """The status class of a source status word, or ``None`` when the table does not know it.

    ``table`` maps :func:`status_key` of a word to a class. Besides the exact word, the word
    before a parenthesis (``存续（在营、开业、在册）`` -> 存续) and before a comma
    (``吊销，未注销`` -> 吊销) are tried, as platforms decorate the registry's words.
    """
    key = status_key(word)
    if key in table:
        return table[key]
    for head in (key.split("(")[0], re.split(r"[,，、;；]", key)[0]):
        head = head.strip()
        if head in table:
            return table[head]
    return None


def status_table(status_map: dict[str, str] | None) -> dict[str, str]:
    """The default status words plus a mapping's ``status_map``, keyed by :func:`status_key`."""
    return {status_key(k): v for k, v in {**S.DEFAULT_STATUS_MAP, **(status_map or {})}.items()}


def parse_status(value: Any, table: dict[str, str]) -> str | ParseFailure | None:
    """The status word as the source writes it, if the status table knows it."""
    if is_missing(value):
        return None
    text = str(value).strip()
    if status_class_of(text, table) is None:
        return ParseFailure(value, f"unknown status '{text}'; add it to status_map in the mapping")
    return text


# -------------------------------------------------------------------------------------- lists


def split_list(value: Any) -> list[str] | None:
    """Split a list cell on ``；`` ``;`` ``、`` ``,`` ``，`` ``|`` and line breaks."""
    if is_missing(value):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        items: Iterable[Any] = list(value)
    else:
        items = LIST_SEPARATORS.split(str(value))
    cleaned = [str(x).strip() for x in items]
    return [x for x in cleaned if x and x.casefold() not in MISSING_TOKENS]


def translate_items(items: list[str], table: dict[str, list[str]]) -> list[str]:
    """Replace each item equal to a key of ``table``, or else containing one (the first key in
    the table's order wins), by the key's values; other items are kept. Duplicates are dropped."""
    out: list[str] = []
    for item in items:
        replaced = table.get(item)
        if replaced is None:
            replaced = next((v for k, v in table.items() if k in item), [item])
        out.extend(x for x in replaced if x not in out)
    return out


def is_flag_set(value: Any) -> bool:
    """A flag column holds 是/否, Y/N, true/false, 1/0 or a level or year (``国家级``, ``2023``):
    anything but a no-word or a missing value counts as set."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if is_missing(value):
        return False
    return str(value).strip().casefold() not in FALSE_WORDS


# ---------------------------------------------------------------------------------- plumbing


def map_cells(values: pd.Series, parse: Callable[[Any], Any]) -> pd.Series:
    """Apply ``parse`` to every cell, once per distinct value (exports repeat dates and words).

    Missing cells (None, NaN) are all parsed as ``None``.
    """
    cells = values.to_numpy(dtype=object)
    try:
        codes, distinct = pd.factorize(cells, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists from Parquet/JSONL)
        return pd.Series([parse(v) for v in cells], index=values.index, dtype=object)
    if len(distinct) and _mixes_bools_and_numbers(distinct):
        # factorize treats True, 1 and 1.0 as one value; parse those cell by cell.
        return pd.Series([parse(v) for v in cells], index=values.index, dtype=object)
    parsed = np.empty(len(distinct) + 1, dtype=object)
    parsed[:-1] = [parse(v) for v in distinct]
    parsed[-1] = parse(None) if (codes == -1).any() else None  # code -1: a missing cell
    return pd.Series(parsed[codes], index=values.index, dtype=object)


def _mixes_bools_and_numbers(distinct: Any) -> bool:
    kinds = {type(v) for v in distinct}
    return (bool in kinds or np.bool_ in kinds) and len(kinds) > 1
