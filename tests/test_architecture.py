"""Dependencies point inward: loyalty.domain imports nothing but the standard library."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_import_linter_contracts_are_kept() -> None:
    exit_code = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    assert exit_code == 0, "import-linter found a broken contract (run `.venv/bin/lint-imports`)"


def test_domain_imports_only_the_standard_library() -> None:
    """Stricter than a forbidden list: any third-party import in the domain fails."""
    graph = grimp.build_graph("loyalty", include_external_packages=True)
    domain = {"loyalty.domain", *graph.find_descendants("loyalty.domain")}
    offending = {
        f"{module} imports {imported}"
        for module in domain
        for imported in graph.find_modules_directly_imported_by(module)
        if imported not in domain and imported.split(".")[0] not in sys.stdlib_module_names
    }
    assert not offending, sorted(offending)
