"""The `tunetui` command: no arguments (or `tui`) opens the workbench, `tunetui PATH` opens it on a store
file (SQLite or an Optuna journal); anything else is the headless CLI.

Lives in tui/ so that engine/ never imports the UI; textual is imported only when the workbench opens.
"""

from __future__ import annotations

import sys
from pathlib import Path

STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".log")  # what `tunetui PATH` takes for a store file


def store_path_argv(argv: list[str]) -> list[str]:
    """`tunetui PATH [options]` as `tunetui tui --storage PATH [options]`: a first argument that is no
    command and names a store file (by its suffix, or a file that exists)."""
    from engine.cli import build_parser

    if not argv or argv[0].startswith("-"):
        return argv
    commands = build_parser()._subparsers._group_actions[0].choices  # argparse keeps its subcommands here
    first = argv[0]
    if first in commands or not (Path(first).suffix.lower() in STORE_SUFFIXES or Path(first).is_file()):
        return argv
    return ["tui", "--storage", first, *argv[1:]]


def main(argv: list[str] | None = None) -> int:
    from engine.cli import EXIT_BAD_INPUT, build_parser
    from engine.cli import main as headless_main

    given = sys.argv[1:] if argv is None else argv
    argv = store_path_argv(given)
    args = build_parser().parse_args(argv)  # --help and bad arguments end here (exit 0 / 2)
    if args.command not in (None, "tui"):
        return headless_main(argv)
    storage = getattr(args, "storage", None)  # None: the default store
    if argv is not given:  # `tunetui PATH`: a store file to read; a typo, a folder or a FIFO is bad input
        path = Path(storage).expanduser()
        if not path.is_file():
            why = "it is a folder" if path.is_dir() else "not a regular file" if path.exists() else "no such file"
            print(f"tunetui: no store at {storage} ({why})", file=sys.stderr)
            return EXIT_BAD_INPUT
    from tui.app import run_app

    run_app(storage, getattr(args, "studies_dir", "studies"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
