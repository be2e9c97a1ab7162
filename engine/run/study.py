"""The study a run works on: created or loaded, checked against the spec's identity, labelled with what
reproduces it, and given this run's sampler seed."""

from __future__ import annotations

import hashlib
import subprocess
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy as sa

from engine.identity import ATTR, differences, known_identity, study_identity
from engine.run.errors import CoordinatorError
from engine.space import build_pruner, build_sampler
from engine.spec import StudySpec
from engine.store import Store, StoreError, redact_spec
from engine.store.connect import fast_sqlite_commits


def open_study(spec: StudySpec, store: Store, host: str, spec_path: str | None, spec_text: str | None
               ) -> optuna.Study:  # fmt: skip
    """Create or load the study; retried, since hosts starting together race to create tables."""
    for attempt in range(5):
        try:
            storage = store.optuna_storage()
            fast_sqlite_commits(storage.engine)
            study = optuna.create_study(
                study_name=spec.study.name,
                storage=storage,
                sampler=build_sampler(spec),
                pruner=build_pruner(spec),
                directions=spec.study.directions,  # several: Optuna's multi-objective study
                load_if_exists=True,
            )
            break
        except (StoreError, sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError):
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
    fast_sqlite_commits(store.engine)
    _record_identity(study, spec)  # before any write: a refused run leaves the study as it was
    study.sampler = build_sampler(_sampler_spec(study, spec, store, host))
    if spec_text is not None:
        study.set_user_attr("spec_toml", redact_spec(spec_text))  # shared: no password
    if spec_path:
        study.set_user_attr("spec_path", str(Path(spec_path).resolve()))
    study.set_user_attr("metric", spec.study.metric if spec.study.objectives is None else spec.study.metrics[0])
    if spec.study.objectives is not None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and stable enough to name objectives
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(spec.study.metrics)  # Optuna's own names (optuna-dashboard shows them)
    return study


def _record_identity(study: optuna.Study, spec: StudySpec) -> None:
    """Write the study's identity when it has none (a new study, or one made before identities or by
    Optuna alone: adopted); refuse one that differs (a run that raced past the CLI's check)."""
    mine = study_identity(spec)
    recorded = study.user_attrs.get(ATTR)
    directions = [d.name for d in study.directions]
    changed = differences(known_identity(recorded, directions, study.user_attrs), mine)
    if changed:
        raise CoordinatorError(
            f"study {spec.study.name} was created with {'; and '.join(changed)}: use --study-name NEW for a new study"
        )
    if recorded is None:
        study.set_user_attr(ATTR, mine)


def _sampler_spec(study: optuna.Study, spec: StudySpec, store: Store, host: str) -> StudySpec:
    """The spec with the sampler's seed this run should use.

    A new study on its first host samples with the spec's seed, so it reproduces. A resumed study, or
    a second host, must not replay the same random sequence (a restart after a crash would try the
    same first points again; two hosts would propose identical trials): mix in host and trial count."""
    trials = len(study.get_trials(deepcopy=False))
    others = [b for b in store.heartbeats(study._study_id) if b["host"] != host]
    if trials == 0 and not others:
        return spec
    digest = hashlib.sha256(f"{spec.study.seed}:{host}:{trials}".encode()).digest()
    seed = int.from_bytes(digest[:4], "big")
    return spec.model_copy(update={"study": spec.study.model_copy(update={"seed": seed})})


def spec_commit(spec_path: str | None) -> str | None:
    """The git commit of the spec's folder (`-dirty` when the spec has changes), recorded on each trial."""
    if not spec_path:
        return None
    directory = Path(spec_path).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(directory), "status", "--porcelain", "--", str(Path(spec_path).resolve())],
        capture_output=True, text=True, timeout=5, check=False,
    ).stdout.strip()  # fmt: skip
    return commit + ("-dirty" if dirty else "")
