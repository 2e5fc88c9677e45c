"""The import rules of ``.importlinter`` hold: ``service/`` and ``pipelines/`` sit on ``matcher/``
(which imports neither), ``pipelines/`` imports ``service/`` only to run it, and no package's
modules import each other in a cycle (imports inside functions count)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the packages under ``root`` with the repository's contracts."""
    command = [str(Path(sys.executable).with_name("lint-imports")), str(REPO_ROOT / ".importlinter"), "--no-cache"]
    return subprocess.run(command, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_are_kept():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout[result.stdout.find("Broken contracts"):] + result.stderr


def test_a_cycle_or_an_upward_import_breaks_a_contract(tmp_path):
    # The contracts catch what they are for: the library importing the CLI, and two modules of a
    # package importing each other from inside functions; ``matcher serve`` may import the service.
    for package, files in {
        "matcher": {"__init__.py": "", "low.py": "def f():\n    import pipelines.top\n"},
        "pipelines": {"__init__.py": "", "top.py": "import matcher.low\n", "a.py": "def f():\n    from pipelines import b\n",
                      "b.py": "def g():\n    from pipelines import a\n",
                      "service_commands.py": "def serve():\n    import service.errors\n"},
        "service": {"__init__.py": "", "errors.py": "import matcher\n"},
    }.items():
        (tmp_path / package).mkdir()
        for name, text in files.items():
            (tmp_path / package / name).write_text(text)

    result = lint_imports(tmp_path)

    assert result.returncode == 1
    assert "matcher.low -> pipelines.top" in result.stdout
    assert "No cycles are allowed in pipelines" in result.stdout
    assert "pipelines imports service only to run it (matcher serve) KEPT" in result.stdout
