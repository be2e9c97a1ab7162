"""The trials one run holds, from ask to tell: dispatch to a worker, report and prune each epoch, and every
way a trial ends (complete, pruned, failed, killed by the user, its worker dead or past its time limit,
orphaned by a dead coordinator, or finished by another host meanwhile)."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.enqueue import OVERRIDES_KEY, overrides_from
from engine.pruning import PruneCopy
from engine.report import KILLED
from engine.run import ledger
from engine.run.pool import WORKER_START_LIMIT_S, Pool, Slot
from engine.run.protocol import Epoch, FromWorker, Log, Ready, RunTrial, StopTrial, TrialDone
from engine.run.resume import checkpoint_dir, has_checkpoint, remove_checkpoint
from engine.space import suggest
from engine.spec import StudySpec
from engine.store import Store
from engine.store.optuna_tables import fail_trial, frozen_trial_id, set_trial_user_attrs, study_storage
from engine.value import objective_values
from engine.weights import WEIGHTS_ERROR_KEY, WeightKeeper, artifact_dir, discard, failure_text

KILL_GRACE_S = 3.0  # a killed trial may stop at its next epoch (its worker lives on); then it is killed


@dataclass
class Progress:
    """What the coordinator tells its caller after each finished trial (this host's run)."""

    done: int = 0
    target: int = 0
    best: float | None = None  # None in a study with several objectives: it has a front, not a best
    best_number: int | None = None


class Trials:
    def __init__(self, spec: StudySpec, store: Store, study: optuna.Study, study_id: int, pool: Pool,
                 host: str, prune_copy: PruneCopy | None, *, spec_path: str | None, spec_commit: str | None,
                 worker_max_trials: int | None, interrupted: Callable[[], bool],
                 log: Callable[[str], None], on_progress: Callable[[Progress], None]):  # fmt: skip
        self.spec, self.store, self.study, self.study_id, self.pool = spec, store, study, study_id, pool
        self.host, self.prune_copy, self.log, self.on_progress = host, prune_copy, log, on_progress
        self.spec_path, self.spec_commit, self.worker_max_trials = spec_path, spec_commit, worker_max_trials
        self.interrupted = interrupted  # a signal arrived: workers are not replaced any more
        self.metrics = spec.study.metrics  # one per objective
        self.several = len(self.metrics) > 1  # Optuna takes no per-epoch report (nor prunes) then
        self.prunes = not isinstance(study.pruner, optuna.pruners.NopPruner)  # skip a store read per epoch
        self.trial_timeout = spec.budget.trial_timeout_s
        self.progress = Progress()
        self.outcomes = ledger.RunOutcomes()
        fixed = spec.train_config({})
        self.weights = WeightKeeper(artifact_dir(store.url, spec.storage.artifacts), fixed.save_weights)
        self.checkpoints = fixed.checkpoint
        self.resumable: dict[int, FrozenTrial] = {}  # orphans of this host with a checkpoint, to run on
        self.weights.adopt(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), study_storage(study))

    # ------------------------------------------------------------------ start and run
    def dispatch(self, slot: Slot) -> None:
        resumed = self.resumable.pop(min(self.resumable)) if self.resumable else None
        # a resumed trial keeps its number, params and reported epochs; suggest() returns its params again
        trial = self.study.ask() if resumed is None else optuna.Trial(self.study, frozen_trial_id(resumed))
        attrs: dict[str, Any] = {
            "host": self.host,
            "coordinator_pid": os.getpid(),
            "device": slot.device if not slot.visible else f"cuda:{slot.visible}",
            "optuna_version": optuna.__version__,
            "spec_commit": self.spec_commit,
        }
        try:  # an enqueued trial may carry overrides (engine/enqueue.py): applied, never sampled
            params = suggest(trial, self.spec, overrides_from(trial.user_attrs.get(OVERRIDES_KEY), self.spec))
            seed = self.spec.study.seed + trial.number
            config = self.spec.train_config(params, seed=seed)
        except ValueError as err:  # pydantic's ValidationError too: sampled values the config refuses
            set_trial_user_attrs(self.study, trial, {**attrs, "fail_reason": "bad_config", "fail_hint": str(err)[:500]})
            self._tell(trial, state=TrialState.FAIL)
            self.progress.done += 1
            self.outcomes.ended(trial.number, TrialState.FAIL, "bad_config", str(err))
            self.log(f"trial {trial.number}: FAIL (bad_config: {str(err).splitlines()[0]})")
            self.on_progress(self.progress)
            return
        attrs.update(seed=seed, amp=config.amp, clip_norm=config.clip_norm)
        if resumed is not None:
            attrs["resumed_after_epoch"] = max(resumed.intermediate_values, default=0)
            self.log(f"trial {trial.number}: resuming after epoch {attrs['resumed_after_epoch']} from its checkpoint")
        set_trial_user_attrs(self.study, trial, attrs)
        slot.take(trial)
        if resumed is not None:  # the value rule and the pruner see the epochs before the resume too
            slot.reported = dict(sorted(resumed.intermediate_values.items()))
        task_params = self.spec.task_params(params)
        if self.spec_path:  # user tasks import their module from the spec's folder
            task_params["__spec_dir__"] = str(Path(self.spec_path).resolve().parent)
        # the task as written (exclude_unset): the worker's TaskSpec then sees the same fields set, and a loop
        # is not refused for the default `name` a full dump would carry beside it
        self.pool.send(slot, RunTrial(trial.number, config.model_dump(), self.spec.task.model_dump(exclude_unset=True),
                                      task_params, self.spec.devices.memory_fraction,
                                      str(self._checkpoint_dir(trial.number)) if self.checkpoints else None))  # fmt: skip

    def _checkpoint_dir(self, number: int) -> Path:
        return checkpoint_dir(self.store.url, self.spec.study.name, number)

    def handle(self, slot: Slot, message: FromWorker) -> None:
        try:
            if isinstance(message, Ready):
                slot.ready, slot.failed_starts, slot.worker_pid = True, 0, message.pid
            elif isinstance(message, Log):
                self.store.write_log(self.study_id, message.number, [message.line])
            elif isinstance(message, Epoch):
                self._on_epoch(slot, message)
            elif isinstance(message, TrialDone):
                self._on_done(slot, message)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._taken(slot)

    def kill(self, number: int) -> bool:
        """Ask the worker running trial `number` to stop it at its next epoch; False: not ours."""
        for slot in self.pool.busy():
            if slot.trial.number == number:
                slot.stop_reason = "user"
                # the worker stops the trial at the end of its epoch and lives on; a hung trial is killed
                slot.kill_deadline = time.time() + KILL_GRACE_S
                self.pool.send(slot, StopTrial(number))
                return True
        return False

    def check_workers(self) -> None:
        """Replace dead workers; kill trials past their time limit or their kill grace."""
        if self.interrupted():
            return  # a terminal's signal may have reached the workers too: the trials are `interrupted`
        for slot in self.pool.slots:
            if slot.process is None:
                continue
            try:
                self._check_worker(slot, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                self._taken(slot)

    def _check_worker(self, slot: Slot, now: float) -> None:
        if not slot.process.is_alive():
            code = self.pool.reap(slot)
            if slot.trial is not None:
                hint = f"the worker process exited with code {code}"
                if code == -signal.SIGKILL:
                    hint += " (SIGKILL: by a user, or the kernel's out-of-memory killer)"
                self.fail(slot, "worker_died", hint)
            self.log(f"worker {slot.index} exited (code {code}); starting a new one")
            self.pool.spawn(slot)
        elif slot.trial is not None and slot.kill_deadline is not None and now > slot.kill_deadline:
            self.log(f"trial {slot.trial.number}: did not stop within {KILL_GRACE_S:g}s; killing its worker")
            self.pool.kill(slot)
            if slot.stop_reason == "user":
                self._user_killed(slot)
            else:  # past its time limit (also a pruned trial that never ended)
                self._timed_out(slot)
            self.pool.spawn(slot)
        elif (slot.trial is not None and self.trial_timeout and slot.kill_deadline is None
              and now - slot.trial_started > self.trial_timeout):  # fmt: skip
            # like a kill: the trial stops at its next epoch (an own loop's report returns True) and its
            # worker lives on; one that does not stop within the grace is killed with its worker
            self.log(f"trial {slot.trial.number}: past its {self.trial_timeout:g}s limit; stopping it")
            slot.kill_deadline = now + KILL_GRACE_S
            if slot.stop_reason is None:  # a trial already told to stop as pruned ends as pruned
                slot.stop_reason = "timeout"
                self.pool.send(slot, StopTrial(slot.trial.number))
        elif not slot.ready and now - slot.started > WORKER_START_LIMIT_S:
            self.log(f"worker {slot.index} did not start within {WORKER_START_LIMIT_S:g}s; replacing it")
            self.pool.replace(slot)

    def _on_epoch(self, slot: Slot, message: Epoch) -> None:
        trial = slot.trial
        if trial is None or message.number != trial.number:
            return
        # once told to stop, the worker may still finish the epoch it was in: keep its telemetry, not its values
        if slot.stop_reason is None:
            for metric in self.metrics:
                value = message.metrics.get(metric)
                if value is not None and math.isfinite(value):
                    slot.curves.setdefault(metric, {})[message.epoch] = value
            value = slot.curves.get(self.metrics[0], {}).get(message.epoch)
            if not self.several and value is not None:
                trial.report(value, message.epoch)  # once per epoch, never per step (~2 ms on SQLite)
                slot.reported[message.epoch] = value
                if self.prunes and self._should_prune(slot):
                    slot.stop_reason = "pruned"
                    self.pool.send(slot, StopTrial(trial.number))
        # Messages are handled in order, so this epoch is committed before the trial's `done` is told.
        self.store.write_epoch(self.study_id, trial.number, message.epoch, message.metrics, message.steps,
                               message.layers)  # fmt: skip

    def _should_prune(self, slot: Slot) -> bool:
        if self.prune_copy is None:
            return slot.trial.should_prune()
        return self.prune_copy.should_prune(slot.trial.number, slot.reported)

    # ------------------------------------------------------------------ how trials end
    def _on_done(self, slot: Slot, message: TrialDone) -> None:
        try:
            self._end(slot, message)
        finally:
            discard(message.weights_file)  # uploaded (a copy) or not wanted

    def _end(self, slot: Slot, message: TrialDone) -> None:
        trial = slot.trial
        if trial is None or message.number != trial.number:
            return
        attrs = dict(message.attrs)
        if message.findings:
            self.store.write_findings(self.study_id, trial.number, message.findings)
        if message.failed:
            self.fail(slot, message.reason, message.hint, attrs)
        elif slot.stop_reason == "user":
            self._user_killed(slot, attrs)
        elif slot.stop_reason == "timeout":
            self._timed_out(slot, attrs)
        elif slot.stop_reason == "pruned":
            set_trial_user_attrs(self.study, trial, attrs)
            self._tell(trial, state=TrialState.PRUNED)
            self._finished(slot, TrialState.PRUNED, None)
        else:
            values, epochs = objective_values(slot.curves, message.metrics, self.metrics, self.spec.study.directions,
                                              self.spec.study.value)  # fmt: skip
            missing = [m for m, v in zip(self.metrics, values, strict=True) if v is None]
            if missing:
                self.fail(slot, "no_metric", f"the trial reported no finite {', '.join(missing)}", attrs)
            else:
                # before tell: a finished trial's attrs are fixed
                attrs.update(self._upload_weights(trial, message.weights_file))
                set_trial_user_attrs(self.study, trial, {**attrs, "value_epoch": epochs[0] if not self.several else None})
                self._tell(trial, values if self.several else values[0])
                if self.prune_copy is not None:
                    self.prune_copy.add(trial.number, values[0], slot.reported)
                self._finished(slot, TrialState.COMPLETE, values)
                self._keep_best_weights()
        if self.worker_max_trials and slot.trials_run >= self.worker_max_trials and not self.interrupted():
            self.pool.retire(slot)

    def _keep_best_weights(self) -> None:
        if self.weights.mode != "best":
            return
        if len(self.study.directions) == 1:  # one indexed query; best_trials would read every trial
            self.weights.keep_best([self.study.best_trial.number])
        else:
            self.weights.keep_best(t.number for t in self.study.best_trials)

    def _upload_weights(self, trial: optuna.Trial, path: str | None) -> dict[str, str]:
        """Upload the trial's weights; the attr that says why they were not saved, when they were not."""
        if not path or self.weights.mode == "none":
            return {}
        try:
            self.weights.upload(trial, path)
        except OSError as err:  # a full disk costs the weights, not the trial; `show` says so
            why = failure_text(err, self.weights.folder)
            self.log(f"trial {trial.number}: weights not saved: {why}")
            return {WEIGHTS_ERROR_KEY: why}
        return {}

    def fail(self, slot: Slot, reason: str, hint: str, attrs: dict | None = None) -> None:
        trial = slot.trial
        if trial is None:
            return
        set_trial_user_attrs(self.study, trial, {**(attrs or {}), "fail_reason": reason, "fail_hint": hint[:500]})
        self._tell(trial, state=TrialState.FAIL)
        self.store.write_log(self.study_id, trial.number, [f"FAIL {reason}: {hint}"])
        self._finished(slot, TrialState.FAIL, None, counted=reason not in ledger.NOT_COUNTED, reason=reason,
                       hint=hint)  # fmt: skip
        self._maybe_retry(trial.number, trial.params, reason)

    def _user_killed(self, slot: Slot, attrs: dict | None = None) -> None:
        """A killed trial is `FAIL killed`, like `FAIL timeout`: never an ordinary PRUNED, which a pruner's
        decision also gives, so the table, `show` and the exports can say it was killed."""
        self.fail(slot, KILLED, "killed by the user before it finished", attrs)

    def _timed_out(self, slot: Slot, attrs: dict | None = None) -> None:
        self.fail(slot, "timeout", f"ran longer than trial_timeout_s={self.trial_timeout:g}", attrs)

    def _finished(self, slot: Slot, state: TrialState, values: list[float] | None, counted: bool = True,
                  reason: str | None = None, hint: str = "") -> None:  # fmt: skip
        number = slot.trial.number
        self.outcomes.ended(number, state, reason, hint)
        remove_checkpoint(self._checkpoint_dir(number))  # the trial is over, however it ended
        slot.release()
        if counted:
            self.progress.done += 1
        if state == TrialState.COMPLETE:
            self.refresh_best()
        shown = f" value{'s' if self.several else ''}=" + ", ".join(f"{v:.4f}" for v in values) if values else ""
        self.log(f"trial {number}: {state.name}{shown}" + (f" ({reason})" if reason else ""))
        self.on_progress(self.progress)

    def abort_running(self, reason: str) -> None:
        """Kill every running trial's worker now (stop --now: KILLED, or a signal: `interrupted`, except a
        trial with a checkpoint, left RUNNING for the next run to resume). The run ends: the workers are not
        replaced."""
        for slot in self.pool.busy():
            self.pool.kill(slot)
            if reason == KILLED:
                self._user_killed(slot)
            elif self.checkpoints and has_checkpoint(self._checkpoint_dir(slot.trial.number)):
                # a batch system's time limit or a preemption (SIGTERM): the next run resumes it
                number = slot.trial.number
                self.store.write_log(self.study_id, number, ["interrupted: left RUNNING, to resume from its checkpoint"])
                self.log(f"trial {number}: interrupted; the next run resumes it from its checkpoint")
                slot.release()
            else:
                self.fail(slot, reason, "the coordinator was stopped while the trial ran")

    def abandon_running(self, hint: str) -> None:
        """The coordinator itself failed: leave no RUNNING trial behind if the store still answers."""
        for slot in self.pool.busy():
            self.pool.kill(slot)
            try:
                self._fail_orphan(slot.trial, hint)
            except Exception:  # noqa: BLE001 - the store may be what failed; the next coordinator recovers
                pass
            slot.trial = None

    def recover_orphans(self) -> None:
        """Fail every RUNNING trial whose coordinator is gone (ledger.orphans); re-enqueue it when asked."""
        live = ledger.live_hosts(self.store.heartbeats(self.study_id), time.time())
        mine = {s.trial.number for s in self.pool.busy()} | set(self.resumable)
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for t, owner in ledger.orphans(running, self.host, mine, live, datetime.now()):
            if owner == self.host:
                self.weights.forget(t, study_storage(self.study))
            if owner == self.host and self.checkpoints and has_checkpoint(self._checkpoint_dir(t.number)):
                self.resumable[t.number] = t  # its coordinator was killed: run it on, same number
                continue
            self._fail_orphan(t, f"its coordinator on {owner} died while it ran")
            self.log(f"trial {t.number}: marked FAIL (orphaned, coordinator on {owner} gone)")
            self._maybe_retry(t.number, t.params, "orphaned")

    def _fail_orphan(self, trial: optuna.Trial | FrozenTrial, hint: str) -> None:
        """FAIL a trial without telling it (an orphan, or one this coordinator abandons)."""
        set_trial_user_attrs(self.study, trial, {"fail_reason": "orphaned", "fail_hint": hint[:500]})
        fail_trial(self.study, trial)
        remove_checkpoint(self._checkpoint_dir(trial.number))
        self.store.write_log(self.study_id, trial.number, [f"FAIL orphaned: {hint}"])

    def _maybe_retry(self, number: int, params: dict, reason: str) -> None:
        if self.spec.study.retry_failed and reason in ledger.NOT_COUNTED and params:
            self.study.enqueue_trial(params, user_attrs={"retry_of": number}, skip_if_exists=False)
            self.log(f"trial {number}: re-enqueued with the same params")

    def _taken(self, slot: Slot) -> None:
        """Another coordinator finished our trial (it took our heartbeat for dead): drop it, uncounted."""
        number = slot.trial.number if slot.trial is not None else "?"
        if slot.trial is not None:
            remove_checkpoint(self._checkpoint_dir(slot.trial.number))
        self.log(f"trial {number}: finished by another coordinator meanwhile; dropping it")
        slot.release()
        self.pool.replace(slot)

    def refresh_best(self) -> None:
        if self.several:
            return  # several objectives: a Pareto front (study.best_trials), no single best to show
        try:
            best = self.study.best_trial
        except ValueError:
            return
        self.progress.best, self.progress.best_number = best.value, best.number

    def _tell(self, trial: optuna.Trial, value: float | None = None, state: TrialState | None = None) -> None:
        try:
            self.study.tell(trial, value, state=state)
        except ValueError as err:
            if "Cannot tell a" in str(err):  # finished by someone else: see _taken
                raise optuna.exceptions.UpdateFinishedTrialError(str(err)) from None
            raise
