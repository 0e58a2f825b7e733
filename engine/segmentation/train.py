"""Training a UNETR on image/label pairs (the study's recipe, configurable; ``msmv train``).

Recipe (docs/architecture.md, "Segmentation"): DiceCE loss, AdamW (lr 2e-5, weight decay 1e-5), batch 2,
RandCropByPosNegLabel ``img_size`` × 4 (pos:neg 1:1), AMP on CUDA only, validation every 2 epochs
with sliding-window Dice, early stopping, best checkpoint kept. Preprocessing is exactly the one
inference uses (:func:`engine.segmentation.infer.prepare_channels`), and so is the window placement:
validation tiles with the sidecar's own (``Sidecar.min_overlap``, see
:func:`engine.segmentation.infer.window_overlap`), which the best checkpoint's sidecar then carries, so
inference places windows as the checkpoint was validated.

Data layout: one folder per case holding ``<contrast>.nrrd`` (or ``.nii``/``.nii.gz``) for each input
contrast and one label file ``labels.nrrd`` / ``labels.seg.nrrd`` / ``labels.nii[.gz]``. 3D Slicer
segment names are mapped onto the label table; unknown names are reported and treated as background.

Interrupted training resumes from ``<out>/last.pt`` (a plain tensor/number dict, loaded with
``weights_only=True``); the best weights so far are ``<out>/best.pt`` + ``best.json``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.transforms import RandCropByLabelClasses, RandCropByPosNegLabel, SpatialPad
from monai.transforms.utils import map_classes_to_indices
from tqdm import tqdm

from engine.errors import EngineError
from engine.segmentation.cases import Case, load_case
from engine.segmentation.checkpoint import (
    STUDY_BATCH,
    STUDY_CROPS,
    STUDY_LR,
    STUDY_VAL_EVERY,
    STUDY_WEIGHT_DECAY,
    Sidecar,
    build_model,
    parameter_count,
    save_checkpoint,
)
from engine.segmentation.evaluate import class_metrics
from engine.segmentation.infer import (
    body_box,
    infer_logits,
    torch_predictor,
    window_overlap,
)
from store.files import atomic_path


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are the study's."""

    lr: float = STUDY_LR
    weight_decay: float = STUDY_WEIGHT_DECAY
    batch_size: int = STUDY_BATCH  # volumes per step; each gives ``crops`` patches
    crops: int = STUDY_CROPS
    pos: float = 1.0
    neg: float = 1.0
    max_epochs: int = 1000
    max_steps: int | None = None
    max_minutes: float | None = None
    epoch_steps: int | None = None  # steps per epoch; default one pass over the training cases
    val_every: int = STUDY_VAL_EVERY  # epochs
    patience: int = 10  # validations without improvement before stopping
    # validation's sliding-window overlap: None is the sidecar's own placement (what inference uses); a
    # number forces a fixed grid, so the validation score is not the deployed path's
    val_overlap: float | None = None
    save_every_s: float = 120.0  # write last.pt at least this often (resumability)
    seed: int = 0
    amp: bool = True  # only used on CUDA (bf16/fp16 autocast on CPU is far slower)
    intensity_jitter: float = 0.1  # random ±10 % intensity scale per crop (robustness across scanners)
    flip_lr: bool = True  # labels are unsided, so a left-right flip is a free augmentation
    schedule: str = "constant"  # "constant" (the study's) or "cosine" (decays to 0 at max_steps)
    # "posneg": RandCropByPosNegLabel (the study's); "classes": RandCropByLabelClasses, centred on each
    # structure equally often and on background ``background_ratio`` times as often as on one structure
    sampling: str = "posneg"
    background_ratio: float = 3.0
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "cosine" and not self.max_steps:
            raise ValueError("a cosine schedule needs max_steps (where the learning rate reaches 0)")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not self.background_ratio >= 0:
            raise ValueError(f"background_ratio must be >= 0, got {self.background_ratio}")


SCHEDULES = ("constant", "cosine")
SAMPLINGS = ("posneg", "classes")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warm-up, then constant or cosine."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(cfg.max_steps - cfg.warmup_steps, 1)  # type: ignore[operator]  # checked in __post_init__
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------- training


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    best_dice: float = -1.0
    best_epoch: int = -1
    stale: int = 0  # validations since the best
    elapsed_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _paired_crops(case: Case, roi: tuple[int, ...], cfg: TrainConfig, rng: np.random.Generator,
                  num_classes: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """``crops`` image/label patches (centred as ``cfg.sampling`` says), plus light augmentation."""
    pad = SpatialPad(roi)
    image = pad(torch.from_numpy(case.image))
    label = pad(torch.from_numpy(case.label.astype(np.float32)))
    both = torch.cat([image, label])
    if cfg.sampling == "classes":
        key = tuple(roi)
        if key not in case.class_indices:  # the per-class voxel lists cost ~0.5 s per case: once
            case.class_indices[key] = map_classes_to_indices(label, num_classes, image, 0.0)
        ratios = [cfg.background_ratio] + [1.0] * (num_classes - 1)
        cropper = RandCropByLabelClasses(roi, ratios=ratios, num_classes=num_classes, num_samples=cfg.crops,
                                         indices=case.class_indices[key], warn=False)
    else:
        cropper = RandCropByPosNegLabel(roi, pos=cfg.pos, neg=cfg.neg, num_samples=cfg.crops, image=image,
                                        image_threshold=0.0)
    cropper.set_random_state(int(rng.integers(2**31)))
    with warnings.catch_warnings():  # "unable to generate class balanced samples" on body-only crops
        warnings.filterwarnings("ignore", message="Num foregrounds")
        patches = cropper(both, label=label)
    xs, ys = [], []
    for p in patches:
        p = torch.as_tensor(p)
        x, y = p[:-1], p[-1:]
        if cfg.flip_lr and rng.random() < 0.5:
            x, y = x.flip(1), y.flip(1)
        if cfg.intensity_jitter:
            x = x * float(1 + rng.uniform(-cfg.intensity_jitter, cfg.intensity_jitter))
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys).round().long()


def validate(model: torch.nn.Module, cases: list[Case], sidecar: Sidecar, *,
             overlap: float | None = None) -> dict[str, float]:
    """Mean Dice/IoU over the validation cases: sliding window on the model grid over the body box, placed as
    :func:`engine.segmentation.infer.segment_channels` places it (the sidecar's ``min_overlap``, else the fixed
    grid; ``overlap`` forces a fixed grid), so the score is the deployed path's (outside the box is
    background)."""
    model.eval()
    dice, iou = [], []
    for case in cases:
        box = body_box(case.image, sidecar.spacing)
        pred = np.zeros(case.label.shape[1:], dtype=np.uint8)
        image = case.image[(slice(None), *box)]
        roi = sidecar.model.img_size
        placed = window_overlap(image.shape[1:], roi, sidecar, overlap=overlap)
        pred[box] = infer_logits(image, roi, torch_predictor(model), overlap=placed).argmax(0).numpy()
        m = class_metrics(pred, case.label[0], sidecar.labels)
        dice.append(m["mean_dice"])
        iou.append(m["mean_iou"])
    model.train()
    return {"dice": float(np.nanmean(dice)), "iou": float(np.nanmean(iou))}


def _save_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, state: TrainState) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "state": {k: v for k, v in asdict(state).items() if k != "history"},
        "history": [[h["epoch"], h["step"], h["loss"], h["val_dice"], h["val_iou"]] for h in state.history],
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> TrainState:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
    except Exception as err:  # a resumable state that does not fit this model/config
        raise EngineError(f"cannot resume from {path}: {err}; delete it to start afresh") from err
    torch.set_rng_state(payload["torch_rng"])
    state = TrainState(**payload["state"])
    state.history = [dict(zip(("epoch", "step", "loss", "val_dice", "val_iou"), h, strict=True))
                     for h in payload["history"]]
    return state


def train(
    train_dirs: list[Path],
    val_dirs: list[Path],
    sidecar: Sidecar,
    out_dir: str | os.PathLike[str],
    cfg: TrainConfig = TrainConfig(),
    *,
    device: str = "cpu",
    half: bool = False,
    progress: bool = True,
    log: Any = print,
) -> TrainState:
    """Train (or resume) a UNETR; keeps ``best.pt``/``best.json`` and ``last.pt`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    t_load = time.perf_counter()
    cases = [load_case(d, sidecar) for d in tqdm(train_dirs, desc="loading training cases", disable=not progress)]
    val_cases = [load_case(d, sidecar) for d in tqdm(val_dirs, desc="loading validation cases", disable=not progress)]
    for c in cases + val_cases:
        if c.unknown:
            log(f"case {c.name}: unknown segment names ignored (background): {c.unknown}")
    log(f"loaded {len(cases)} training / {len(val_cases)} validation cases in {time.perf_counter() - t_load:.1f} s")
    model = build_model(sidecar).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    use_amp = cfg.amp and str(device).startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    last = out / "last.pt"
    state = _load_state(last, model, opt) if last.is_file() else TrainState()
    if state.step:
        log(f"resumed from {last}: epoch {state.epoch}, step {state.step}, best Dice {state.best_dice:.4f}")
    steps_per_epoch = cfg.epoch_steps or max(1, math.ceil(len(cases) / cfg.batch_size))
    total = cfg.max_steps if cfg.max_steps is not None else cfg.max_epochs * steps_per_epoch
    bar = tqdm(total=total, initial=min(state.step, total), desc="training", disable=not progress)
    t_start = time.perf_counter() - state.elapsed_s
    t_saved = time.perf_counter()
    roi = sidecar.model.img_size
    loss_val = float("nan")
    model.train()
    stop = False
    while not stop and state.epoch < cfg.max_epochs:
        rng = np.random.default_rng([cfg.seed, state.epoch])
        order = np.concatenate([rng.permutation(len(cases)) for _ in range(
            math.ceil(steps_per_epoch * cfg.batch_size / len(cases)))])
        losses = []
        for b in range(steps_per_epoch):
            batch = [cases[i] for i in order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
            xy = [_paired_crops(c, roi, cfg, rng, sidecar.out_channels) for c in batch]
            x = torch.cat([p[0] for p in xy]).to(device)
            y = torch.cat([p[1] for p in xy]).to(device)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, state.step)
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", enabled=use_amp):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            loss_val = float(loss.detach())
            losses.append(loss_val)
            state.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_val:.3f}", val_dice=f"{state.best_dice:.3f}",
                            lr=f"{opt.param_groups[0]['lr']:.1e}")
            if cfg.max_steps is not None and state.step >= cfg.max_steps:
                stop = True
            if cfg.max_minutes is not None and time.perf_counter() - t_start >= cfg.max_minutes * 60:
                stop = True
            if stop:
                break
        state.epoch += 1
        state.elapsed_s = time.perf_counter() - t_start
        if val_cases and (state.epoch % cfg.val_every == 0 or stop):
            metrics = validate(model, val_cases, sidecar, overlap=cfg.val_overlap)
            state.history.append({"epoch": state.epoch, "step": state.step, "loss": float(np.mean(losses)),
                                  "val_dice": metrics["dice"], "val_iou": metrics["iou"]})
            log(f"epoch {state.epoch} step {state.step}: loss {np.mean(losses):.4f} "
                f"val Dice {metrics['dice']:.4f} IoU {metrics['iou']:.4f} ({state.elapsed_s / 60:.1f} min)")
            if metrics["dice"] > state.best_dice:
                state.best_dice, state.best_epoch, state.stale = metrics["dice"], state.epoch, 0
                _write_best(out, model, sidecar, cfg, state, len(cases), len(val_cases), half=half)
            else:
                state.stale += 1
                if state.stale >= cfg.patience:
                    log(f"early stopping: no improvement in {cfg.patience} validations")
                    stop = True
        if stop or time.perf_counter() - t_saved >= cfg.save_every_s or state.epoch % cfg.val_every == 0:
            _save_state(last, model, opt, state)
            t_saved = time.perf_counter()
    bar.close()
    _save_state(last, model, opt, state)
    if not val_cases:
        _write_best(out, model, sidecar, cfg, state, len(cases), 0, half=half)
    return state


def _write_best(out: Path, model: torch.nn.Module, sidecar: Sidecar, cfg: TrainConfig, state: TrainState,
                n_train: int, n_val: int, *, half: bool) -> None:
    training = {
        **sidecar.training,
        "recipe": {k: v for k, v in asdict(cfg).items()},
        "train_cases": n_train,
        "val_cases": n_val,
        "epochs": state.epoch,
        "steps": state.step,
        "minutes": round(state.elapsed_s / 60, 2),
        "parameters": parameter_count(model),
    }
    metrics = {**sidecar.metrics, "validation_mean_dice": state.best_dice, "validation_epoch": state.best_epoch}
    save_checkpoint(out / "best", model, replace(sidecar, training=training, metrics=metrics), half=half)
