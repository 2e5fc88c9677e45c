"""Loading a YAML config file (mapping, chain map) into a pydantic model, with errors that name
the file and the offending key."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from matcher.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)
# libyaml's safe loader where PyYAML was built with it: a chain map loads in ~0.1 s, not ~1 s
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_model(path: str | Path, model: type[Model], what: str) -> Model:
    """Read ``path`` and validate it as ``model``; ``what`` names the file kind in errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) or {}
        return model.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: where (line and column, 1-based) and what, without PyYAML's
    multi-line snippet of the file."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")
