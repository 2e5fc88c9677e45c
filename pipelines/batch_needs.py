"""The JSONL batch file of ``matcher search --batch``: one need per line, with its own filters."""

from __future__ import annotations

import json
from pathlib import Path

from matcher.errors import SchemaError
from matcher.retrieval import Filters


FILTER_KEYS = {
    "country": "countries", "countries": "countries", "province": "provinces", "provinces": "provinces",
    "min_employees": "min_employees", "max_employees": "max_employees", "founded_after": "founded_after",
    "qualification": "qualifications", "qualifications": "qualifications",
    "include_local": "include_local", "include_closed": "include_closed",
}


def _filter_value(key: str, target: str, value):
    """Type-check one batch filter field; a wrong type is that line's error."""
    if target in ("countries", "provinces", "qualifications"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ValueError(f"field '{key}' must be a string or a list of strings")
        return tuple(items)
    if target in ("include_local", "include_closed"):
        if not isinstance(value, bool):
            raise ValueError(f"field '{key}' must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"field '{key}' must be a whole number >= 0")
    return value


def read_needs(path: Path, defaults: Filters) -> tuple[list[dict], int]:
    """Parse a JSONL file of needs; invalid lines become error entries, never silently skipped."""
    if not path.is_file():
        raise SchemaError(f"{path}: batch file not found")
    needs, failures = [], 0
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        need_id = f"line-{line_no}"
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            need_id = str(item.get("id", need_id))
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ValueError("field 'text' missing or empty")
            overrides = {}
            for key, value in item.items():
                if key in ("id", "text"):
                    continue
                if key not in FILTER_KEYS:
                    raise ValueError(f"unknown field '{key}'")
                target = FILTER_KEYS[key]
                overrides[target] = _filter_value(key, target, value)
            filters = Filters(**{**defaults.__dict__, **overrides})
            needs.append({"id": need_id, "text": text, "filters": filters})
        except (ValueError, TypeError) as exc:
            failures += 1
            needs.append({"id": need_id, "error": f"{path.name} line {line_no}: {exc}"})
    return needs, failures
