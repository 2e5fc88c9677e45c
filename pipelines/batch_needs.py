"""The JSONL batch file of ``matcher search --batch``: one need per line, with its own filters."""

from __future__ import annotations

import json
from pathlib import Path

from matcher.errors import SchemaError
from matcher.filters import Filters, validate_filters


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
            if "exclude_ids" in item:  # the service's exclusions, not a field of a need
                raise ValueError("field 'exclude_ids' is not a filter of a need")
            filters = validate_filters({k: v for k, v in item.items() if k not in ("id", "text")}, defaults)
            needs.append({"id": need_id, "text": text, "filters": filters})
        except (ValueError, TypeError, SchemaError) as exc:
            failures += 1
            needs.append({"id": need_id, "error": f"{path.name} line {line_no}: {exc}"})
    return needs, failures
