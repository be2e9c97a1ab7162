"""One service layer for the store: only engine/store/ speaks SQL, and only engine/store/optuna_tables.py names
Optuna's tables or private API (so an Optuna upgrade is checked in one place, behind its version check)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

OPTUNA_INTERNALS = re.compile(
    r"\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+(trials|studies|trial_\w+|study_\w+|version_info|alembic_version)\b"
    r"|storages\._rdb|\._storage\b|_cached_frozen_trial|\._backend\b|\w+Model\b.*\bmodels\b|\bmodels\.\w+Model\b"
)
SQL = re.compile(r"\b(SELECT|INSERT INTO|DELETE FROM|PRAGMA)\b|sa\.text\(|\bsa\.select\(|\.insert\(\)|\.delete\(\)")


def sources(*folders: str):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def hits(pattern: re.Pattern, path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def test_only_optuna_tables_names_optunas_tables_or_private_api():
    found = [h for p in sources("engine", "tui") if p != ROOT / "engine/store/optuna_tables.py"
             for h in hits(OPTUNA_INTERNALS, p)]  # fmt: skip
    assert found == []


def test_only_the_store_package_speaks_sql():
    store = ROOT / "engine" / "store"
    found = [h for p in sources("engine", "tui") if store not in p.parents for h in hits(SQL, p)]
    assert found == []


@pytest.mark.parametrize("line", ["JOIN trial_values v ON", "FROM trials t", "x = study._storage", "storages._rdb", "models.TrialModel"])
def test_the_patterns_catch_what_they_look_for(line):
    assert OPTUNA_INTERNALS.search(line)
