"""The layers, held by what each import pulls in: the headless commands, the coordinator and the TUI
never import torch (a worker's ~250 MB); nothing in engine/ imports textual. Each check runs in a fresh
interpreter, so one test's imports cannot hide another's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

EVERY_MODULE = (
    "import importlib, pkgutil, {package}; "
    "[importlib.import_module(m.name) for m in pkgutil.walk_packages({package}.__path__, '{package}.') "
    "if not m.name.endswith('__main__')]"  # importing a __main__ runs the program
)


def imported_after(code: str) -> set[str]:
    """Top-level packages in sys.modules after running `code` in a new interpreter."""
    probe = f"{code}; import sys; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "module", ["engine.cli", "engine.run.coordinator", "engine.store", "engine.export", "tui.entry", "tui.app"]
)
def test_the_control_side_never_imports_torch(module):
    assert "torch" not in imported_after(f"import {module}")


def test_no_tui_module_imports_torch():
    assert "torch" not in imported_after(EVERY_MODULE.format(package="tui"))


def test_no_engine_module_imports_textual_or_the_tui():
    loaded = imported_after(EVERY_MODULE.format(package="engine"))
    assert "torch" in loaded  # the walk reached the training side
    assert not {"textual", "tui"} & loaded
