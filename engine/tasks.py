"""The task API's name before the torch side moved to engine/trainer/: user task files written then
(`from engine.tasks import TaskData`) keep working. Resolved on first use, so importing this module does
not import torch; only a worker, which has torch already, looks a name up."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    from engine.trainer import tasks

    return getattr(tasks, name)
