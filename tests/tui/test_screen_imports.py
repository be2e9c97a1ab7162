"""Screens never import each other (not even inside a function): they post a message and app.py navigates,
so the screen modules have no import cycle to hide."""

from __future__ import annotations

import ast
from pathlib import Path

SCREENS = Path(__file__).resolve().parents[2] / "tui" / "screens"


def screen_imports(path: Path) -> list[str]:
    """Every tui.screens module this file imports, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `from .study import X` or `from . import study`
                names = [f"tui.screens.{node.module or alias.name}" for alias in node.names]
            else:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names if name.startswith("tui.screens.")]
    return found


def test_no_screen_module_imports_another_screen_module():
    modules = sorted(p for p in SCREENS.glob("*.py") if p.name != "__init__.py")
    assert len(modules) >= 8
    offenders = {path.name: found for path in modules if (found := screen_imports(path))}
    assert offenders == {}


def test_the_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from tui.screens.study import StudyScreen\n    from . import confirm\n")
    assert screen_imports(sample) == ["line 2: tui.screens.study.StudyScreen", "line 3: tui.screens.confirm"]
