"""Training cases on disk: one folder per case with its contrasts and a label map.

Layout: ``<contrast>.nrrd`` (or ``.nii``/``.nii.gz``) for each input contrast and one label file
``labels.nrrd`` / ``labels.seg.nrrd`` / ``labels.nii[.gz]``. 3D Slicer segment names are mapped onto the
label table; unknown names are reported and treated as background.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.imaging.volume import IMAGE_SUFFIXES, Volume, read_image
from engine.segmentation.checkpoint import Sidecar
from engine.segmentation.infer import prepare_channels, resample, segment_names
from store.structures import structure

LABEL_STEMS = ("labels.seg", "labels")


def read_labels(path: str | os.PathLike[str], table: dict[int, str]) -> tuple[Volume, list[str]]:
    """Read a label map; Slicer segment names are mapped onto ``table``. Returns ``(labels, unknown names)``."""
    vol = read_image(path)
    data = np.asarray(vol.data)
    named = segment_names(vol.meta)
    if not named:
        bad = sorted(set(np.unique(data).tolist()) - {0} - set(table))
        if bad:
            raise EngineError(f"{path}: label values {bad} are not in the label table {sorted(table)}")
        return vol.with_data(data.astype(np.uint8)), []
    by_name = {v.strip().lower(): k for k, v in table.items()}
    lut = np.zeros(max(int(data.max(initial=0)), max(named)) + 1, dtype=np.uint8)
    unknown = []
    for value, name in named.items():
        target = by_name.get(name.strip().lower())
        if target is None:
            try:
                target = structure(name).label
            except ValueError:
                target = None
        if target is None or target not in table:
            unknown.append(name)
            continue
        lut[value] = target
    return vol.with_data(lut[data.astype(np.int64)]), unknown


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


@dataclass
class Case:
    """One preprocessed training case on the model grid."""

    name: str
    image: np.ndarray  # (C, X, Y, Z) float32 in [0, 1]
    label: np.ndarray  # (1, X, Y, Z) uint8
    unknown: list[str] = field(default_factory=list)
    class_indices: dict[tuple[int, ...], list[Any]] = field(default_factory=dict, repr=False)  # per padded roi


def load_case(folder: str | os.PathLike[str], sidecar: Sidecar) -> Case:
    """Read and preprocess one case folder (contrasts + labels) for ``sidecar``."""
    folder = Path(folder)
    channels = []
    for c in sidecar.contrasts:
        p = _find(folder, c)
        if p is None:
            raise EngineError(f"case {folder}: missing {c}.nrrd / {c}.nii.gz")
        channels.append(read_image(p))
    label_path = next((p for s in LABEL_STEMS if (p := _find(folder, s)) is not None), None)
    if label_path is None:
        raise EngineError(f"case {folder}: no labels.nrrd, labels.seg.nrrd or labels.nii.gz")
    labels, unknown = read_labels(label_path, sidecar.labels)
    if labels.shape != channels[0].shape:
        raise EngineError(f"case {folder}: labels {labels.shape} do not match image {channels[0].shape}")
    image, grid = prepare_channels(channels, sidecar)
    lab = resample(labels, sidecar.spacing, order=0, shape=grid.shape).data.astype(np.uint8)
    return Case(folder.name, image, lab[None], unknown)


def case_folders(root: str | os.PathLike[str]) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder {root} does not exist")
    found = sorted(p for p in root.iterdir() if p.is_dir() and any(_find(p, s) for s in LABEL_STEMS))
    if not found:
        raise EngineError(f"{root}: no case folders with a labels file")
    return found
