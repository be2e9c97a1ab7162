"""The headless `tunetui` subcommands (run, ls, show, export, control, profile); never imports textual or tui/."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.isolation import STORAGE_ENV, no_dump, read_url_pipe, reexec_hiding_url
from engine.launch import RunRequest, UsageError, check_run_numbers, detach, prepare, whole_number
from engine.show import cmd_ls, cmd_show, open_store, print_summary
from engine.text import hide_passwords, markup_safe, safe, safe_lines

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
# the machine's state, not our bug: a full disk, a read-only folder, no permission
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def printable(err: object) -> str:
    """An error's text fit for the terminal and a log: no control byte, no password of a URL in it."""
    return safe_lines(hide_passwords(str(err)))


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit code is already 2; keep its message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"tunetui: error: {message}\n")


MAX_TRIAL_NUMBER = 2**63 - 1  # a trial number is a 64-bit integer in every store


def count_arg(text: str) -> int:
    """A count on the command line (`--trials`, `--workers`, `--steps`): engine/launch.py's whole number,
    refused by argparse (exit 2) when it is none."""
    try:
        return whole_number(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def trial_number(text: str) -> int:
    """A trial number on the command line (`show --trial`, `export --trial`, `kill`): 0 or more, 64-bit."""
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(f"expected a trial number, a whole number 0 or more (got {text[:40]!r})")
    if len(text.strip()) > 19 or int(text) > MAX_TRIAL_NUMBER:  # int() of thousands of digits is refused
        raise argparse.ArgumentTypeError(f"no trial number is that large (got {text.strip()[:40]!r})")
    return int(text)


def given(what: str):
    """An option that names something (a URL, a file, a folder, a device): an empty value is refused, not
    read as "not given" (`--storage "$STORE"` with STORE unset ran on the default store; `-o ""` said it
    could not write the standard output)."""

    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"the value is empty: give {what} (is a shell variable unset?)")
        return text

    return check


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="tunetui", description="Tune PyTorch models with Optuna from the terminal.")
    parser.add_argument(
        "--storage", type=given("a storage URL"),
        help="storage URL (default: $TUNETUI_STORAGE or sqlite:///.tunetui/tunetui.db)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def storage_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--storage", type=given("a storage URL"), default=argparse.SUPPRESS,
            help="storage URL (overrides $TUNETUI_STORAGE)",
        )

    run = sub.add_parser("run", help="run a study from a spec file (resumes it if it exists)")
    run.add_argument("spec", help="study spec (TOML)")
    run.add_argument("--trials", type=count_arg, help="trials this run adds (default: the spec's budget.n_trials)")
    run.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    run.add_argument("--device", type=given("a device"), help="auto | cpu | cuda | cuda:0,cuda:1 (overrides [devices].device)")
    run.add_argument("--workers", type=count_arg, help="worker processes (default: one per GPU slot, 1 on CPU)")
    run.add_argument("--study-name", help="override [study].name")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec value, e.g. --set train.epochs=3 (TOML value syntax)")  # fmt: skip
    run.add_argument(
        "--detach", action="store_true", help="start the coordinator in the background and return"
    )
    run.add_argument("--graceful", action="store_true", help="on a signal, let running trials finish first")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    # internal: the storage URL is $TUNETUI_STORAGE and overrides the spec's (how `--detach` and the TUI
    # hand a URL to a child: never on its command line, which every local user can read)
    run.add_argument("--storage-from-env", action="store_true", help=argparse.SUPPRESS)
    # internal: the run re-executed itself with its URLs on this pipe (engine/isolation.py)
    run.add_argument("--storage-fd", type=int, help=argparse.SUPPRESS)
    storage_arg(run)

    validate = sub.add_parser("validate", help="check spec files; print a summary or the problems")
    validate.add_argument("specs", nargs="+")

    ls = sub.add_parser("ls", help="list the studies in the store")
    ls.add_argument("--json", action="store_true")
    storage_arg(ls)

    show = sub.add_parser("show", help="a study's best trial, counts by state and diagnosis")
    show.add_argument("study")
    show.add_argument("--trial", type=trial_number, help="show one trial in detail")
    show.add_argument("--json", action="store_true")
    show.add_argument("--artifacts", type=given("a folder"), metavar="DIR", help="the saved weights' folder (default: beside the store)")
    show.add_argument("--improvement", action="store_true",
                      help="estimate now the improvement left (Optuna's terminator; takes seconds: it imports torch)")
    storage_arg(show)

    export = sub.add_parser(
        "export", help="write trials as CSV/JSON, the best trial as a spec, or TensorBoard logs"
    )
    export.add_argument("study")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("-o", "--output", type=given("a file name"), help="file to write (default: standard output)")
    export.add_argument("--best-spec", type=given("a file name"), metavar="FILE", help="write the best params as a runnable spec")
    export.add_argument("--tensorboard", type=given("a folder"), metavar="DIR", help="write TensorBoard event files per trial")
    export.add_argument("--weights", action="store_true",
                        help="write a trial's saved weights (a state_dict) to -o FILE (default: the best trial's)")
    export.add_argument("--trial", type=trial_number, metavar="N", help="with --weights: this trial's weights; with "
                        "--best-spec: its params (a Pareto-front trial when there are several objectives)")  # fmt: skip
    export.add_argument("--force", action="store_true",
                        help="overwrite an existing file (-o, --best-spec, --weights)")
    export.add_argument("--artifacts", type=given("a folder"), metavar="DIR", help="the saved weights' folder (default: beside the store)")
    storage_arg(export)

    for name, text in (("stop", "stop a study: running trials finish, no new ones start"),
                       ("pause", "pause a study: no new trials until resume"),
                       ("resume", "resume a paused study")):  # fmt: skip
        p = sub.add_parser(name, help=text)
        p.add_argument("study")
        if name == "stop":
            p.add_argument("--now", action="store_true", help="kill running trials too")
        storage_arg(p)

    kill = sub.add_parser("kill", help="kill one running trial")
    kill.add_argument("study")
    kill.add_argument("trial", type=trial_number)
    storage_arg(kill)

    profile = sub.add_parser("profile", help="profile a few training steps of a spec with torch.profiler")
    profile.add_argument("spec")
    profile.add_argument(
        "--trial-params", default="{}", help="JSON object of params (default: the spec's fixed values)"
    )
    profile.add_argument("--steps", type=count_arg, default=20)
    profile.add_argument("--trace", type=given("a file name"), default="tunetui-trace.json", help="Chrome trace output file")
    profile.add_argument("--device", type=given("a device"), help="cpu | cuda (default: auto)")

    tui = sub.add_parser("tui", help="open the terminal workbench (same as no command)")
    storage_arg(tui)
    tui.add_argument("--studies-dir", type=given("a folder"), default="studies")
    return parser


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None  # only a process of its own may re-execute itself (hide_url_now)
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv, args.as_program = argv, as_program
    if args.command == "run":
        hide_url_now(args)
    from engine.spec import SpecError
    from engine.store import StoreError, StoreUrlError

    try:
        if args.command in (None, "tui"):  # the `tunetui` command (tui/entry.py) opens the workbench
            parser.print_usage(sys.stderr)
            print(
                "tunetui: the workbench opens with `tunetui` (no arguments) or `python -m tui`",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        handler = COMMANDS[args.command]
        return handler(args)
    except SpecError as err:
        print(printable(err), file=sys.stderr)
        if args.command == "run":
            print("nothing was started.", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as err:
        print(f"tunetui: {printable(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreUrlError as err:
        print(f"tunetui: {printable(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StoreError, WriteFailed) as err:
        print(f"tunetui: {printable(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug of ours: one line for the user, the traceback on request
        if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:  # the machine's state, not a bug
            from engine.store import explain_os_error

            print(f"tunetui: {printable(explain_os_error(err, Path(err.filename or '.')))}", file=sys.stderr)
            return EXIT_FAILURE
        if os.environ.get("TUNETUI_DEBUG"):
            raise
        print(f"tunetui: internal error: {type(err).__name__}: {printable(err)} (set TUNETUI_DEBUG=1 for details)",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE


# ---------------------------------------------------------------- run


def run_request(args: argparse.Namespace) -> RunRequest:
    return RunRequest(args.spec, args.trials, args.timeout, args.device, args.workers, args.study_name,
                      tuple(args.set), args.graceful)  # fmt: skip


def hide_url_now(args: argparse.Namespace) -> None:
    """A run becomes the coordinator, whose argv and environment its tasks can read: it re-executes itself with
    the URL on a pipe (returns only if no URL is in argv or the environment). First thing, before the spec and
    store modules are imported (0.6 s of CPU the new process would spend again)."""
    if not args.as_program or args.detach or args.storage_fd is not None:
        return
    if args.storage_from_env and not os.environ.get(STORAGE_ENV):
        return  # cmd_run refuses it
    reexec_hiding_url(args.argv, os.environ[STORAGE_ENV] if args.storage_from_env else getattr(args, "storage", None))


def cmd_run(args: argparse.Namespace) -> int:
    from engine.store import Store

    request = run_request(args)
    check_run_numbers(request)
    if args.storage_from_env:
        if not os.environ.get(STORAGE_ENV):
            raise UsageError(f"--storage-from-env: ${STORAGE_ENV} is not set")
        args.storage = os.environ[STORAGE_ENV]
    env_url = None
    if args.storage_fd is not None:  # the URL came on a pipe (hide_url_now)
        sent = read_url_pipe(args.storage_fd)
        args.storage, env_url = sent.get("storage") or getattr(args, "storage", None), sent.get("env")
    prepared = prepare(request, getattr(args, "storage", None), env_url)
    if args.detach:
        started = detach(request, prepared)
        if not started.ok:
            if started.log_tail:
                print(started.log_tail, file=sys.stderr)
            print(f"tunetui: {started.report()}", file=sys.stderr)
            return EXIT_FAILURE
        print(started.report())
        return EXIT_OK

    from engine.run.coordinator import Coordinator, CoordinatorError, RunOptions

    spec = prepared.spec
    no_dump()  # a task (same user) must not read this process's environment or memory
    store = Store(prepared.url)
    options = RunOptions(
        n_trials=args.trials,
        timeout_s=args.timeout if args.timeout is not None else spec.budget.timeout_s,
        workers=args.workers,
        device=args.device,
        graceful=args.graceful,
        spec_path=str(Path(args.spec).resolve()),
        spec_text=prepared.text,
    )
    show_progress = not args.quiet and sys.stderr.isatty()
    with _Reporter(spec.study.name, show_progress) as reporter:
        coordinator = Coordinator(spec, store, options, on_progress=reporter.update, log=reporter.log)
        try:
            code = coordinator.run()
        except CoordinatorError as err:
            print(f"tunetui: {printable(err)}", file=sys.stderr)
            return EXIT_FAILURE
    print_summary(store, spec.study.name)
    if coordinator.failure:
        print(f"tunetui: {printable(coordinator.failure)}", file=sys.stderr)
    return code


class _Reporter:
    """A rich progress bar (trials done, best so far, ETA) when on a terminal; plain lines otherwise."""

    def __init__(self, study: str, live: bool):
        self.study, self.live, self.progress, self.task = study, live, None, None

    def __enter__(self) -> _Reporter:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("best {task.fields[best]}"), TimeRemainingColumn(), transient=False,
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task(markup_safe(self.study), total=None, best="-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, p) -> None:
        if self.progress is not None:
            best = f"{p.best:.4f} (#{p.best_number})" if p.best is not None else "-"
            self.progress.update(self.task, completed=p.done, total=p.target, best=best)

    def log(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.progress is not None:
            self.progress.console.print(f"[dim]{stamp}[/] {markup_safe(hide_passwords(line))}", highlight=False)
        else:
            print(f"{stamp} {safe(hide_passwords(line))}", flush=True)


# ---------------------------------------------------------------- read-only commands


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.space import grid_size
    from engine.spec import SpecError, load_spec

    worst = EXIT_OK
    for path in args.specs:
        try:
            spec = load_spec(path)
        except SpecError as err:
            print(printable(err), file=sys.stderr)
            worst = EXIT_BAD_INPUT
            continue
        dims = len(spec.space)
        conditional = sum(1 for d in spec.space.values() if d.when)
        grid = grid_size(spec)
        extra = f", grid of {grid}" if grid else ""
        print(safe(
            f"ok {path}: study {spec.study.name} ({spec.study.summary()}), {spec.task.label}, "
            f"{dims} dimensions ({conditional} conditional), sampler {spec.sampler.kind}{extra}, "
            f"pruner {spec.pruner.kind}, budget {spec.budget.n_trials} trials"
        ))
    return worst


class WriteFailed(Exception):
    """A file the user named could not be written (full disk, no permission): exit 1, the reason named."""


@contextmanager
def writing(path: object) -> Iterator[None]:
    """An export's output: a folder where a file goes (or a file where a folder goes) is bad input, the
    machine refusing the write a failure; both name the path the user gave, never the store."""
    try:
        yield
    except FileExistsError:  # export --weights without --force: its own message
        raise
    except (IsADirectoryError, NotADirectoryError) as err:
        raise UsageError(f"cannot write {path}: {err.strerror} ({err.filename})") from None
    except OSError as err:
        raise WriteFailed(f"cannot write {path}: {err.strerror or err}") from None


def cmd_export(args: argparse.Namespace) -> int:
    from engine.export import FrontTrialNeeded, best_spec_toml, export_rows, write_csv, write_json
    from engine.files import write_private
    from engine.report import find_study

    if args.trial is not None and not (args.best_spec or args.weights):
        raise UsageError("--trial N goes with --best-spec FILE (the trial whose params the spec fixes) or --weights")
    store = open_store(args)
    if args.weights:
        return export_weights(store, args)
    if args.output and Path(args.output).is_file() and not args.force:  # an earlier export, or any file
        raise UsageError(f"{args.output} exists: pass --force to overwrite it")
    if args.best_spec:
        try:
            text = best_spec_toml(store, args.study, args.trial)
        except FrontTrialNeeded as err:
            raise UsageError(str(err)) from None
        if Path(args.best_spec).is_file() and not args.force:  # a spec the user wrote, maybe the one it ran
            raise UsageError(f"{args.best_spec} exists: pass --force to overwrite it")
        with writing(args.best_spec):
            write_private(args.best_spec, text)
        print(f"wrote {args.best_spec}", file=sys.stderr)
    if args.tensorboard:
        from engine.tensorboard_export import export_study_tensorboard

        find_study(store, args.study)
        with writing(args.tensorboard):
            count = export_study_tensorboard(store, args.study, args.tensorboard)
        print(f"wrote TensorBoard logs for {count} trial(s) to {args.tensorboard}", file=sys.stderr)
    if args.best_spec or args.tensorboard:
        if not args.output:
            return EXIT_OK
    rows = export_rows(store, args.study)
    writer = write_csv if args.format == "csv" else write_json
    with writing(args.output or "the standard output"):
        writer(rows, args.output, stream=sys.stdout)
    if args.output:
        print(f"wrote {len(rows)} trial(s) to {args.output}", file=sys.stderr)
    return EXIT_OK


def export_weights(store, args: argparse.Namespace) -> int:
    """`export --weights [--trial N] -o FILE`: exit 2 when there is nothing to write or FILE exists."""
    from engine.files import NotPrivate
    from engine.report import find_study
    from engine.weights import artifact_dir, study_weights, write_weights

    if not args.output:
        raise UsageError("--weights needs -o FILE (the weights are a binary state_dict)")
    study = find_study(store, args.study)
    folder = artifact_dir(store.url, args.artifacts)
    try:
        every = study_weights(store, study["study_name"], folder)
    except NotPrivate as err:  # its files may be anyone's: a state_dict is a pickle its user loads
        raise UsageError(f"{err}; nothing was written") from None
    numbers = ", ".join(str(w.number) for w in every) or "none"
    saved, which = every, f"study {study['study_name']}"
    if args.trial is not None:
        saved, which = [w for w in every if w.number == args.trial], f"trial {args.trial}"
    elif every and len(study["directions"]) == 1:
        best = store.optuna_study(study["study_name"]).best_trial.number
        saved, which = [w for w in every if w.number == best], f"the best trial ({best})"
    if not saved and folder.exists() and not folder.is_dir():
        raise UsageError(f"{which} has no saved weights: {folder} is not a folder (see --artifacts DIR)")
    if not saved and not folder.is_dir():  # a store copied or moved without its folder says nothing else
        raise UsageError(f"{which} has no saved weights: the folder {folder} does not exist (never made: see "
                         "[train] save_weights; moved or on another host: name it with --artifacts DIR)")  # fmt: skip
    if not saved:
        raise UsageError(f"{which} has no saved weights in {folder} (trials with weights: {numbers}; "
                         "see [train] save_weights)")  # fmt: skip
    if len(saved) > 1:
        raise UsageError(f"weights of several trials are saved ({numbers}): pick one with --trial N")
    try:
        with writing(args.output):
            write_weights(saved[0], folder, args.output, args.force)
    except FileExistsError as err:
        raise UsageError(str(err)) from None
    print(f"wrote the weights of trial {saved[0].number} ({saved[0].size:,} bytes) to {args.output}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- control


def cmd_control(args: argparse.Namespace) -> int:
    from engine.control import ask
    from engine.report import find_study, missing_trial
    from engine.store import Store

    action = args.command
    arg = None
    if action == "stop" and args.now:
        action = "stop_now"
    store = Store(getattr(args, "storage", None), create=False)
    if action == "kill":
        if (missing := missing_trial(find_study(store, args.study), args.trial)) is not None:
            raise UsageError(f"kill: {missing}; nothing was sent")
        arg = str(args.trial)
    answer = ask(store, args.study, action, arg)
    print(safe_lines(answer.text), file=sys.stdout if answer.ok else sys.stderr)
    return EXIT_OK if answer.ok else EXIT_FAILURE


MAX_PROFILE_STEPS = 10_000  # the profiler keeps every step's events in memory


def cmd_profile(args: argparse.Namespace) -> int:
    from engine.spec import load_spec

    spec = load_spec(args.spec)
    try:
        params = json.loads(args.trial_params)
    except json.JSONDecodeError as err:
        raise UsageError(f"--trial-params is not valid JSON: {err}") from None
    if not isinstance(params, dict):
        raise UsageError("--trial-params must be a JSON object, e.g. '{\"lr\": 0.01}'")
    if not 1 <= args.steps <= MAX_PROFILE_STEPS:
        raise UsageError(f"--steps must be between 1 and {MAX_PROFILE_STEPS:,} (got {args.steps})")
    from engine.trainer.profile import profile_trial

    table = profile_trial(spec, params, steps=args.steps, trace_path=args.trace, device=args.device,
                          spec_dir=Path(args.spec).resolve().parent)  # fmt: skip
    print(table)
    print(f"Chrome trace: {args.trace} (open in chrome://tracing or ui.perfetto.dev)")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "ls": cmd_ls,
    "show": cmd_show,
    "export": cmd_export,
    "stop": cmd_control,
    "pause": cmd_control,
    "resume": cmd_control,
    "kill": cmd_control,
    "profile": cmd_profile,
}


if __name__ == "__main__":
    sys.exit(main())
