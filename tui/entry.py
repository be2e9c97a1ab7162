"""The `tunetui` command: no arguments (or `tui`) opens the workbench; anything else is the headless CLI.

Lives in tui/ so that engine/ never imports the UI; textual is imported only when the workbench opens.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from engine.cli import build_parser
    from engine.cli import main as headless_main

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)  # --help and bad arguments end here (exit 0 / 2)
    if args.command not in (None, "tui"):
        return headless_main(argv)
    from tui.app import run_app

    run_app(args.storage, getattr(args, "studies_dir", "studies"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
