"""Findings about a trial from its telemetry: gradient health, fit, learning rate."""

from __future__ import annotations

from engine.config import TrainConfig


def diagnose(
    epochs: list[dict], steps: list[dict], layers: list[dict], config: TrainConfig, failure: str | None
) -> list[dict]:
    """Each finding: kind, severity ("info"|"warning"|"error"), evidence (numbers), remedy (plain words)."""
    return []
