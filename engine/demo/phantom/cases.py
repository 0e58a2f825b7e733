"""Phantom subjects as training and evaluation cases for :mod:`engine.segmentation.train`.

Lives in the demo because it generates phantoms; the training code itself knows only case folders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from engine.demo.phantom.subject import make_phantom
from engine.imaging.volume import write_nrrd
from engine.segmentation.checkpoint import Sidecar
from engine.segmentation.evaluate import class_metrics
from engine.segmentation.infer import segment_channels, write_labels
from store.structures import STRUCTURES


def phantom_cases(root: str | os.PathLike[str], seeds: range | list[int], *,
                  spacing: tuple[float, float, float] = (2.0, 2.0, 3.0), progress: bool = True) -> list[Path]:
    """Generate (or reuse cached) phantom case folders ``root/phantom_<seed>`` for training.

    Phantoms are rendered at ``spacing`` (close to the fused UKB grid, 2.232 mm × 3 mm) with noise and
    bias field, so training sees the same trilinear resampling to the model grid that inference does.
    """
    root = Path(root)
    out = []
    for seed in tqdm(list(seeds), desc="phantom cases", disable=not progress):
        folder = root / f"phantom_{seed:05d}"
        if not (folder / "labels.nrrd").is_file():
            p = make_phantom(seed, spacing=spacing)
            for name in ("water", "fat"):
                write_nrrd(folder / f"{name}.nrrd", getattr(p, name))
            write_labels(folder / "labels.nrrd", p.labels, {s.label: s.name for s in STRUCTURES})
        out.append(folder)
    return out


PHANTOM_EVAL_SPACING = (2.232, 2.232, 3.0)  # the fused UKB grid: 2.232 mm in-plane, 3 mm slices


def evaluate_on_phantom(model: torch.nn.Module, sidecar: Sidecar, seed: int, *,
                        spacing: tuple[float, float, float] = PHANTOM_EVAL_SPACING) -> dict[str, Any]:
    """Segment a freshly generated phantom (``seed``) and score it against its truth on its own grid."""
    p = make_phantom(seed, spacing=spacing)
    pred = segment_channels([getattr(p, c) for c in sidecar.contrasts], model, sidecar)
    return class_metrics(pred.data, p.labels.data, sidecar.labels)
