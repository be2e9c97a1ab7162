"""The torch side: the training loop, models, tasks, the worker process and the profiler.

The only package in engine/ that imports torch; the coordinator, the CLI and the TUI never import it
(tests/test_import_hygiene.py). This file itself stays free of torch: the coordinator imports
`engine.trainer.worker_main` to spawn workers, and that import must not pull torch in."""
