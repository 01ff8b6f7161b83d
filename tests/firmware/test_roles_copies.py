"""The device's two copies of the contract's roles (config.py checks settings, trigger.py
parses trigger lines; neither loads the other on the device) equal the contract's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from contract.protocol import ROLES

DEVICE = Path(__file__).resolve().parents[2] / "firmware" / "device"


def _roles_in(module: str) -> tuple[str, ...]:
    tree = ast.parse((DEVICE / module).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "ROLES"
        ]:
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple)
            return value
    raise AssertionError(f"{module} has no ROLES")


@pytest.mark.parametrize("module", ["config.py", "trigger.py"])
def test_the_device_roles_are_the_contracts(module: str) -> None:
    assert _roles_in(module) == tuple(ROLES)
