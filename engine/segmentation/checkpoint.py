"""Segmentation checkpoints: UNETR weights plus a JSON sidecar that describes them.

A checkpoint is two files side by side: ``<name>.pt`` holding a plain ``state_dict`` (loaded with
``torch.load(weights_only=True)``, so no arbitrary object is ever unpickled) and ``<name>.json``
holding everything needed to use the weights: architecture, label table, spacing, intensity window,
input contrasts, a description of the training data, evaluation metrics and a format version. The
sidecar records the weights' SHA-256; a checkpoint that does not match its sidecar fails with a
:class:`~engine.errors.CheckpointError` naming what differs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import CheckpointError
from store.files import atomic_path, atomic_write_text, sha256_file
from store.home import home
from store.structures import STRUCTURES
from store.vocabulary import CONTRASTS

if TYPE_CHECKING:  # torch and MONAI load lazily so `msmv --help` stays fast
    import torch
    from monai.networks.nets import UNETR

SIDECAR_VERSION = 1
# The study's preprocessing (docs/architecture.md, "Segmentation"): Dixon water window and target spacing.
STUDY_WINDOW: tuple[float, float] = (80.0, 450.0)
STUDY_SPACING: tuple[float, float, float] = (1.5, 1.5, 2.0)
DEFAULT_CONTRASTS: tuple[str, ...] = ("water",)
# The study's training recipe (docs/architecture.md, "Segmentation"); engine.segmentation.train uses these as defaults.
STUDY_LR = 2e-5
STUDY_WEIGHT_DECAY = 1e-5
STUDY_BATCH = 2
STUDY_CROPS = 4
STUDY_VAL_EVERY = 2
DEFAULT_OVERLAP = 0.25  # MONAI's sliding-window default; the benchmark reports what others cost
# The study model's window placement (Sidecar.min_overlap): the fewest 96³ windows per axis that still
# overlap by >= 10 % (engine.segmentation.infer.fewest_windows_overlap): 30 windows instead of 54 on a
# pelvis-to-knee body crop, each seam still blended over >= 10 voxels (docs/architecture.md "Throughput").
STUDY_MIN_OVERLAP = 0.1
# The committed demo checkpoint (trained on phantoms by `msmv train`, see README).
DEMO_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "demo_unetr.pt"
UNETR_PATCH = 16  # MONAI's UNETR embeds fixed 16³ patches, so every image side must divide by 16


@dataclass(frozen=True)
class ModelConfig:
    """UNETR architecture; the defaults are the study's configuration (docs/architecture.md)."""

    img_size: tuple[int, int, int] = (96, 96, 96)
    feature_size: int = 16
    hidden_size: int = 768
    mlp_dim: int = 3072
    num_heads: int = 12
    norm_name: str = "instance"
    res_block: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", tuple(int(s) for s in self.img_size))
        if len(self.img_size) != 3 or any(s <= 0 or s % UNETR_PATCH for s in self.img_size):
            raise ValueError(f"img_size must be three positive multiples of {UNETR_PATCH}, got {self.img_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size must be divisible by num_heads, got {self.hidden_size} and {self.num_heads}"
            )


STUDY_MODEL = ModelConfig()


def default_label_table() -> dict[int, str]:
    """The 27 structures of ``store.structures`` as ``{label: name}``."""
    return {s.label: s.name for s in STRUCTURES}


@dataclass(frozen=True)
class Sidecar:
    """Everything about a checkpoint except its weights."""

    model: ModelConfig = STUDY_MODEL
    labels: dict[int, str] = field(default_factory=default_label_table)
    spacing: tuple[float, float, float] = STUDY_SPACING
    window: tuple[float, float] = STUDY_WINDOW
    contrasts: tuple[str, ...] = DEFAULT_CONTRASTS
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # post-processing inference applies (engine.segmentation.postprocess.PostProcess.from_calibration)
    calibration: dict[str, Any] = field(default_factory=dict)
    validated_on: str = ""  # what the checkpoint's accuracy was measured on, in words (validation_note)
    # sliding-window placement: None is MONAI's fixed grid at DEFAULT_OVERLAP; a fraction places the
    # fewest windows per axis overlapping by at least it (engine.segmentation.infer.fewest_windows_overlap)
    min_overlap: float | None = None
    weights_dtype: str = "float32"
    weights_sha256: str = ""
    version: int = SIDECAR_VERSION

    def __post_init__(self) -> None:
        labels = {int(k): str(v) for k, v in self.labels.items()}
        if 0 in labels or any(k < 0 for k in labels):
            raise ValueError(f"label table must hold positive labels (0 is background), got {sorted(labels)}")
        object.__setattr__(self, "labels", dict(sorted(labels.items())))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "window", tuple(float(w) for w in self.window))
        object.__setattr__(self, "contrasts", tuple(self.contrasts))
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be three positive numbers in mm, got {self.spacing}")
        if len(self.window) != 2 or self.window[1] <= self.window[0]:
            raise ValueError(f"window must be (low, high) with low < high, got {self.window}")
        if self.min_overlap is not None and not 0 <= self.min_overlap < 1:
            raise ValueError(f"min_overlap must be in [0, 1) or None, got {self.min_overlap}")
        unknown = [c for c in self.contrasts if c not in CONTRASTS]
        if not self.contrasts or unknown:
            raise ValueError(f"contrasts must be a non-empty subset of {CONTRASTS}, got {self.contrasts}")

    @property
    def out_channels(self) -> int:
        """Network outputs: background plus the highest label (labels index the channels)."""
        return max(self.labels) + 1

    @property
    def in_channels(self) -> int:
        return len(self.contrasts)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = {str(k): v for k, v in self.labels.items()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Sidecar:
        if not isinstance(d, dict):
            raise CheckpointError(f"sidecar must be a JSON object, found {type(d).__name__}")
        version = d.get("version")
        if version != SIDECAR_VERSION:
            raise CheckpointError(f"sidecar version {version!r} is not supported; expected {SIDECAR_VERSION}")
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(d) - known)
        if extra:
            raise CheckpointError(f"sidecar has unknown fields {extra}; expected only {sorted(known)}")
        try:
            model = ModelConfig(**d.get("model", {}))
            return cls(**{**d, "model": model, "labels": {int(k): v for k, v in d.get("labels", {}).items()}})
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"invalid sidecar: {err}") from err


# What a checkpoint trained and scored on phantoms alone can claim; the bundled demo checkpoint's
# sidecar says this, and every page showing its results repeats validation_note's sentence.
SYNTHETIC_ONLY = "synthetic phantoms only; its accuracy on real MRI is unknown"


def validation_note(validated_on: str) -> str:
    """One plain sentence saying what a checkpoint was validated on (its sidecar's ``validated_on``)."""
    if not validated_on:
        return "This checkpoint does not record what it was validated on: treat its volumes as unvalidated."
    return f"Segmentation checkpoint validated on {validated_on}."


# Label-map header key under which inference writes validation_note (engine.segmentation.infer), so a
# label map carries what its checkpoint was validated on wherever it goes (Subject page, 3D Slicer).
VALIDATION_KEY = "msmv_checkpoint_validated_on"


def build_model(sidecar: Sidecar) -> UNETR:
    """A freshly initialised UNETR shaped as ``sidecar`` describes."""
    from monai.networks.nets import UNETR

    m = sidecar.model
    return UNETR(
        in_channels=sidecar.in_channels,
        out_channels=sidecar.out_channels,
        img_size=m.img_size,
        feature_size=m.feature_size,
        hidden_size=m.hidden_size,
        mlp_dim=m.mlp_dim,
        num_heads=m.num_heads,
        norm_name=m.norm_name,
        res_block=m.res_block,
    )


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(weights, sidecar)`` paths for a checkpoint given as either file or the shared stem."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".pt", ".json") else p
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def save_checkpoint(
    path: str | os.PathLike[str], model: torch.nn.Module, sidecar: Sidecar, *, half: bool = False
) -> tuple[Path, Path]:
    """Write ``model``'s weights (fp16 if ``half``) and ``sidecar``; returns ``(weights, sidecar)`` paths."""
    import torch

    weights, side = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    state = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    final = replace(sidecar, weights_dtype="float16" if half else "float32", weights_sha256=sha256_file(weights))
    atomic_write_text(side, json.dumps(final.to_json(), indent=2, sort_keys=True) + "\n")
    return weights, side


def read_sidecar(path: str | os.PathLike[str]) -> Sidecar:
    """Read and validate a checkpoint's JSON sidecar (``path`` may name the ``.pt`` or the ``.json``)."""
    _, side = checkpoint_paths(path)
    if not side.is_file():
        raise CheckpointError(f"checkpoint sidecar {side} not found; a checkpoint is a .pt plus a .json")
    try:
        raw = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"sidecar {side} is not valid JSON: {err}") from err
    return Sidecar.from_json(raw)


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", verify_hash: bool = True
) -> tuple[UNETR, Sidecar]:
    """Build the sidecar's UNETR and load its weights safely; returns ``(model in eval mode, sidecar)``."""
    import torch

    weights, side = checkpoint_paths(path)
    sidecar = read_sidecar(side)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights {weights} not found next to sidecar {side}")
    if verify_hash and sidecar.weights_sha256 and sha256_file(weights) != sidecar.weights_sha256:
        raise CheckpointError(
            f"{weights} does not match its sidecar: SHA-256 differs from the recorded {sidecar.weights_sha256[:12]}…"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError… for unsafe/corrupt files
        raise CheckpointError(f"cannot load {weights} safely (weights_only=True): {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{weights} must hold a state_dict of tensors, found {type(state).__name__}")
    model = build_model(sidecar)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs sidecar {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[0]})")
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise CheckpointError(f"{weights} does not match the architecture in its sidecar: " + "; ".join(parts))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval(), sidecar


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def active_checkpoint(msmv_home: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint to use: ``MSMV_HOME/checkpoints/active`` if set, else the bundled demo checkpoint.

    ``active`` is either a symlink to a ``.pt`` or a text file holding its path.
    """
    marker = home(msmv_home).checkpoints / "active"
    if marker.is_symlink() or marker.is_file():
        target = marker.resolve() if marker.is_symlink() else Path(marker.read_text().strip()).expanduser()
        if not target.is_absolute():
            target = marker.parent / target
        weights, side = checkpoint_paths(target)
        if not side.is_file():
            raise CheckpointError(f"{marker} points to {target}, which has no sidecar {side.name}")
        return weights
    return DEMO_CHECKPOINT


def store_metrics(path: str | os.PathLike[str], **metrics: Any) -> Path:
    """Merge ``metrics`` into a checkpoint sidecar's ``metrics`` (weights untouched, hash unchanged)."""
    _, side = checkpoint_paths(path)
    sidecar = read_sidecar(side)
    final = replace(sidecar, metrics={**sidecar.metrics, **metrics})
    atomic_write_text(side, json.dumps(final.to_json(), indent=2, sort_keys=True) + "\n")
    return side


def update_sidecar(path: str | os.PathLike[str], **changes: Any) -> Path:
    """Replace sidecar fields (e.g. ``calibration``, ``validated_on``); weights untouched, hash unchanged.

    The changed sidecar is validated as a whole before it is written.
    """
    _, side = checkpoint_paths(path)
    sidecar = read_sidecar(side)
    unknown = sorted(set(changes) - set(Sidecar.__dataclass_fields__))
    if unknown or {"weights_sha256", "weights_dtype", "version"} & set(changes):
        raise ValueError(f"cannot update sidecar fields {unknown or sorted(changes)}: unknown, or tied to the weights")
    final = Sidecar.from_json({**sidecar.to_json(), **changes})
    atomic_write_text(side, json.dumps(final.to_json(), indent=2, sort_keys=True) + "\n")
    return side
