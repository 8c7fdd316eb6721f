"""The import direction of docs/architecture.md, "Layers": bot → handlers → content, bot/referrals → storage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "storage": {"bot", "handlers", "referrals", "content", "counselling"},
    "content": {"bot", "handlers", "referrals", "storage", "counselling"},
    "handlers": {"bot", "storage", "referrals", "counselling"},
    "referrals": {"bot", "handlers", "counselling"},
    "counselling": {"bot", "handlers"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_downwards(package: str) -> None:
    """No module imports a part of the project above it."""
    offending = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_no_platform_library_in_the_engine() -> None:
    """The engine and content know no messaging platform."""
    for package in ("handlers", "content"):
        for path in (ROOT / package).rglob("*.py"):
            assert not imported_packages(path) & {"telegram", "aiohttp"}, path


# Where bot/ may touch the database library: the runtime opens the session of an update and
# tells a lost database from a bug; the start-up loads the key ring. Everything else reaches
# the database through a use case below bot/ (docs/architecture.md, "Layers").
SESSION_OPENERS = {"bot/runtime.py", "bot/bootstrap.py"}


def test_bot_holds_no_query() -> None:
    """Nothing under bot/ imports SQLAlchemy except the runtime's session opening and the start-up."""
    importing = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "bot").rglob("*.py")
        if "sqlalchemy" in imported_packages(path)
    }
    assert importing - SESSION_OPENERS == set()
    assert importing, "the rule would pass on an empty folder"
