"""The layers, held by what each import pulls in: the headless commands, the coordinator and the TUI
never import torch (a worker's ~250 MB); only engine/trainer/ does; nothing in engine/ imports textual.
Each check runs in a fresh interpreter, so one test's imports cannot hide another's."""

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


# engine.trainer.worker_main: the coordinator imports it to spawn its workers
@pytest.mark.parametrize(
    "module",
    [
        "engine.cli", "engine.run.coordinator", "engine.store", "engine.export", "engine.trainer.worker_main",
        "tui.entry", "tui.app",
    ],
)  # fmt: skip
def test_the_control_side_never_imports_torch(module):
    assert "torch" not in imported_after(f"import {module}")


def test_no_tui_module_imports_torch():
    assert "torch" not in imported_after(EVERY_MODULE.format(package="tui"))


def test_no_engine_module_imports_textual_or_the_tui():
    loaded = imported_after(EVERY_MODULE.format(package="engine"))
    assert "torch" in loaded  # the walk reached the training side
    assert not {"textual", "tui"} & loaded


# the file tree, not pkgutil.walk_packages: the walk imports every package it enters, engine.trainer.tasks
# (torch) among them
FIRST_TORCH_IMPORTER = """
import importlib, pathlib, sys
files = sorted(pathlib.Path("engine").rglob("*.py"))
names = [".".join(f.with_suffix("").parts).removesuffix(".__init__") for f in files
         if f.parts[1] != "trainer" and f.stem != "__main__"]
culprit = next((name for name in names if importlib.import_module(name) and "torch" in sys.modules), None)
print(len(names), culprit)
"""


def test_only_the_trainer_package_imports_torch():
    """Every engine module outside engine/trainer/, imported one after another in one interpreter; the first
    after whose import torch is loaded is named."""
    done = subprocess.run(
        [sys.executable, "-c", FIRST_TORCH_IMPORTER], cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    walked, culprit = done.stdout.split()
    assert int(walked) > 10  # the walk reached the engine's modules
    assert culprit == "None", f"{culprit} imports torch; only engine/trainer/ may"
