"""No import runs from a lower layer to a higher one (docs/architecture.md, Layers).

contract (bottom) <- firmware tools, gateway, server, broker (the parts) <- nps_edge (top).
The parts do not import each other, except the broker tools reading the server's
registry. Read from the source with `ast`, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contract", "firmware", "gateway", "server", "broker", "nps_edge")
# What each package may import of the others.
ALLOWED: dict[str, set[str]] = {
    "contract": set(),
    "firmware": {"contract"},
    "gateway": {"contract"},
    "server": {"contract"},
    "broker": {"contract", "server"},  # `broker config --db` reads the device registry
    "nps_edge": {"contract", "firmware", "gateway", "server", "broker"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


def sources(package: str) -> list[Path]:
    # firmware/device runs on the board under MicroPython: it imports no CPython package.
    return [p for p in (ROOT / package).rglob("*.py") if "device" not in p.relative_to(ROOT).parts]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_runs_up_or_across(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in sources(package)
        if (found := imported_packages(path) - ALLOWED[package] - {package})
    }
    assert wrong == {}, f"{package} may import only {sorted(ALLOWED[package])}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from nps_edge.processes import Child\n")
    assert imported_packages(module) == {"nps_edge"}
