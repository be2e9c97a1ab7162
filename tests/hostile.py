"""A store full of outside text that is hostile to a terminal: markup in names and params, ESC bytes, a
500-character name, and a user task whose error text carries ESC bytes and rich markup."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from tests.conftest import run_cli

MARKUP_NAME = "a[/]b"
ESC_NAME = "\x1b[31mred"
LONG_NAME = "n" * 500
HOSTILE_NAMES = (MARKUP_NAME, ESC_NAME, LONG_NAME)
MARKUP_CHOICE = "[/]"
FAILING_STUDY = "fails"
ERROR_TEXT = "\x1b[31mboom [bold]loud[/bold] \x1b]0;pwned\x07 [/]"

TASK_MODULE = f'''
def explode(params, device):
    raise RuntimeError({ERROR_TEXT!r})
'''

FAILING_SPEC = f"""
[study]
name = "{FAILING_STUDY}"
seed = 1
[budget]
n_trials = 1
[sampler]
kind = "random"
[pruner]
kind = "none"
[task]
name = "hostile_task:explode"
[train]
epochs = 1
batch_size = 16
[space.lr]
type = "float"
low = 1e-3
high = 1e-1
"""


def build_hostile_store(folder: Path) -> str:
    """A real run whose one trial fails with hostile error text, then studies Optuna alone names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hostile_task.py").write_text(TASK_MODULE)
    spec = folder / "fails.toml"
    spec.write_text(FAILING_SPEC)
    url = f"sqlite:///{folder / 'hostile.db'}"
    result = run_cli("run", str(spec), "--storage", url, "--quiet", timeout=300, cwd=folder)
    assert "FAIL" in result.stdout + result.stderr or result.returncode in (0, 1), result.stderr
    for name in HOSTILE_NAMES:
        study = optuna.create_study(study_name=name, storage=url, direction="maximize")
        study.add_trial(
            optuna.trial.create_trial(
                params={"choice": MARKUP_CHOICE, "colour": ESC_NAME, "lr": 0.01},
                distributions={
                    "choice": CategoricalDistribution([MARKUP_CHOICE, ESC_NAME, "plain"]),
                    "colour": CategoricalDistribution([ESC_NAME, "plain"]),
                    "lr": FloatDistribution(1e-3, 1e-1),
                },
                value=0.5,
            )
        )
    return url
