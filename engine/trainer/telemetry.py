"""Telemetry of the training loop, kept on the device until one copy per epoch: sampled step rows, per-layer
gradient and weight norms and gradient histograms, and that one copy to the host."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from engine.config import TrainConfig

STEP_COLUMNS = ("step", "epoch", "loss", "lr", "grad_norm", "clipped", "amp_scale", "skipped")
LAYER_COLUMNS = ("layer", "grad_norm", "weight_norm", "hist_json")
HIST_SAMPLE = 4096  # gradient values per layer counted into its histogram (a fixed random sample)


def step_row(
    step: int, epoch: int, lr: float, values: list[float], clip: float | None, scaled: bool
) -> dict:
    """A tt_step row from a sample's [loss, grad norm (-1: not measured), amp scale]."""
    loss, norm, scale = values
    measured = not norm < 0
    return {
        "step": step,
        "epoch": epoch,
        "loss": loss,
        "lr": lr,
        "grad_norm": finite_or_none(norm) if measured else None,
        "clipped": int(clip is not None and measured and norm > clip),
        "amp_scale": scale if scaled else None,
        # GradScaler skips a step exactly when the unscaled gradients hold an inf or nan
        "skipped": int(scaled and measured and not math.isfinite(norm)),
    }


def histogram_picks(layers: list[tuple[str, nn.Module]], seed: int) -> list[Tensor | None]:
    """Per layer, a fixed random sample of HIST_SAMPLE weight positions (None: the layer is small
    enough to count every gradient value). Bounds the per-epoch histogram cost on tiny epochs."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for _, module in layers:
        size = module.weight.numel()
        if size <= HIST_SAMPLE:
            picks.append(None)
        else:
            chosen = torch.randperm(size, generator=generator)[:HIST_SAMPLE].sort().values
            picks.append(chosen.to(module.weight.device))
    return picks


def measure_layers(
    layers: list[tuple[str, nn.Module]], picks: list[Tensor | None], config: TrainConfig
) -> Tensor:
    """Per layer: [grad norm, weight norm, sample min, sample max, histogram counts...] as one device tensor.
    Runs once per epoch. The norms cover every value; the histogram counts the layer's sampled positions."""
    rows = []
    bins = config.hist_bins
    for (_, module), pick in zip(layers, picks, strict=True):
        own = [p for p in module.parameters(recurse=False) if p.grad is not None]
        if module.weight.grad is None:  # the layer took no part in this step
            rows.append(torch.full((4 + bins,), math.nan, device=module.weight.device))
            continue
        grad_norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in own])
        )
        weight_norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.detach().float()) for p in own])
        )
        grad = module.weight.grad.detach().flatten()
        values = (grad if pick is None else grad.index_select(0, pick)).float()
        lo, hi = torch.aminmax(values)  # the histogram's range: its edges are rebuilt from these on the host
        if config.histograms:
            counts = histogram(torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0), lo, hi, bins)
        else:
            counts = torch.full((bins,), math.nan, device=grad.device)
        rows.append(torch.cat([torch.stack([grad_norm, weight_norm, lo, hi]), counts]))
    return torch.stack(rows)


def histogram(values: Tensor, lo: Tensor, hi: Tensor, bins: int) -> Tensor:
    """torch.histc(values, bins, lo, hi) with the range given as device tensors, so nothing syncs.
    histc takes its range as host numbers: min=max=0 (the data's range) makes it read the range back
    to the host, two syncs per layer per epoch on CUDA. Equal values count into [lo - 1, hi + 1], as histc."""
    flat = hi <= lo
    lo, hi = torch.where(flat, lo - 1, lo), torch.where(flat, hi + 1, hi)
    # a nan range (nan gradients) makes positions nan: counted into bin 0, and the host drops the histogram
    position = torch.nan_to_num((values - lo) / (hi - lo) * bins, nan=0.0).clamp_(0, bins - 1)  # histc's formula
    counts = torch.zeros(bins, device=values.device)
    return counts.scatter_add_(0, position.long(), torch.ones_like(values))


def layer_rows_from(
    layers: list[tuple[str, nn.Module]], values: list[list[float]], config: TrainConfig
) -> list[dict]:
    rows = []
    for (name, _), row in zip(layers, values, strict=True):
        grad_norm, weight_norm, lo, hi, *counts = row
        hist = None
        if config.histograms and math.isfinite(lo) and math.isfinite(hi):
            if hi <= lo:
                lo, hi = lo - 1, hi + 1  # what histc does when every value is equal
            width = (hi - lo) / len(counts)
            # written by hand: json.dumps of full-precision floats costs more than the histogram itself
            edges = ",".join(f"{lo + k * width:.7g}" for k in range(len(counts) + 1))
            hist = f'{{"edges":[{edges}],"counts":[{",".join(str(int(c)) for c in counts)}]}}'
        rows.append(
            {
                "layer": name,
                "grad_norm": finite_or_none(grad_norm),
                "weight_norm": finite_or_none(weight_norm),
                "hist_json": hist,
            }
        )
    return rows


def to_host(*tensors: Tensor | None) -> list[Any]:
    """Copy several device tensors to the host in one transfer; each comes back as nested lists."""
    present = [t for t in tensors if t is not None]
    flat = torch.cat([t.detach().float().flatten() for t in present]).cpu().tolist()
    out: list[Any] = []
    offset = 0
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        chunk = flat[offset : offset + t.numel()]
        offset += t.numel()
        if t.dim() == 2:
            chunk = [chunk[r * t.shape[1] : (r + 1) * t.shape[1]] for r in range(t.shape[0])]
        out.append(chunk)
    return out


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
