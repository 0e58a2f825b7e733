"""``msmv segment``, ``msmv train``, ``msmv evaluate`` and ``msmv measure``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: File endings ``msmv segment --out`` writes: NRRD, or NIfTI with a JSON sidecar.
LABEL_MAP_SUFFIXES: tuple[str, ...] = (".nrrd", ".nii.gz", ".nii")


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _dump(obj: Any, as_json: bool, text: str) -> None:
    from engine.segmentation.evaluate import json_safe

    print(json.dumps(json_safe(obj), indent=2) if as_json else text)


def _segment(args: argparse.Namespace) -> int:
    from engine.segmentation.checkpoint import active_checkpoint
    from engine.segmentation.infer import STRAY_KEY, SegmentTiming, segment_fused, stray_removed, write_labels

    if not args.out.endswith(LABEL_MAP_SUFFIXES):
        print(f"msmv segment: error: --out {args.out}: a label map file ends in {', '.join(LABEL_MAP_SUFFIXES)}",
              file=sys.stderr)
        return 2
    _threads(args.threads)
    ckpt = Path(args.checkpoint) if args.checkpoint else active_checkpoint()
    timing = SegmentTiming()
    from store.home import home

    labels, sidecar = segment_fused(args.fused_dir, ckpt, overlap=args.overlap, crop=not args.no_crop,
                                    progress=not args.quiet, timing=timing, runtime=args.runtime,
                                    onnx_cache=home().onnx_cache, threads=args.threads or 2)
    if args.out.endswith(".nrrd"):
        out = write_labels(args.out, labels, sidecar.labels)
    else:  # NIfTI: RAS affine of the same grid, label table and header metadata in a JSON sidecar
        from engine.imaging.volume import write_nifti

        out = write_nifti(args.out, labels, labels=sidecar.labels)
    print(f"wrote {out} ({len(set(labels.data.ravel().tolist()) - {0})} structures) with {ckpt.name}: "
          f"{timing.windows} windows over {timing.cropped_grid} of {timing.model_grid}, "
          f"{timing.preprocess_s + timing.network_s + timing.postprocess_s:.1f} s", file=sys.stderr)
    removed = stray_removed(labels.meta)
    if removed:
        print(f"removed {sum(removed.values()):.1f} cm³ of stray components (largest component per structure "
              f"and side kept; per structure in the label map's {STRAY_KEY} header)", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from engine.segmentation.cases import case_folders
    from engine.segmentation.checkpoint import STUDY_MODEL, ModelConfig, Sidecar, default_label_table
    from engine.segmentation.train import TrainConfig, train

    _threads(args.threads)
    folders = case_folders(args.data)
    if args.val_data:
        train_dirs, val_dirs = folders, case_folders(args.val_data)
    else:
        if args.val_count >= len(folders):
            print(f"msmv train: error: --val-count {args.val_count} leaves no training cases "
                  f"({len(folders)} found)", file=sys.stderr)
            return 2
        train_dirs, val_dirs = folders[args.val_count:], folders[:args.val_count]
    model = ModelConfig(
        img_size=tuple(args.img_size) if args.img_size else STUDY_MODEL.img_size,
        feature_size=args.feature_size or STUDY_MODEL.feature_size,
        hidden_size=args.hidden_size or STUDY_MODEL.hidden_size,
        mlp_dim=args.mlp_dim or STUDY_MODEL.mlp_dim,
        num_heads=args.num_heads or STUDY_MODEL.num_heads,
    )
    kw: dict[str, Any] = {"model": model, "labels": default_label_table(),
                          "contrasts": tuple(args.contrasts),
                          "training": {"data": args.description or str(args.data), "command": "msmv " + " ".join(sys.argv[1:])}}
    if args.spacing:
        kw["spacing"] = tuple(args.spacing)
    try:
        sidecar = Sidecar(**kw, min_overlap=args.min_overlap)
        cfg = TrainConfig(
            lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size, crops=args.crops,
            max_epochs=args.epochs, max_steps=args.max_steps, max_minutes=args.max_minutes,
            epoch_steps=args.epoch_steps, val_every=args.val_every, patience=args.patience, seed=args.seed,
            schedule=args.schedule, warmup_steps=args.warmup_steps, sampling=args.sampling,
        )
    except ValueError as err:
        print(f"msmv train: error: {err}", file=sys.stderr)
        return 2
    state = train(train_dirs, val_dirs, sidecar, args.out, cfg, device=args.device, half=args.half)
    print(f"done: epoch {state.epoch}, step {state.step}, best validation Dice {state.best_dice:.4f} "
          f"(epoch {state.best_epoch}); best checkpoint {Path(args.out) / 'best.pt'}", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from engine.imaging.volume import read_nrrd
    from engine.segmentation.checkpoint import default_label_table
    from engine.segmentation.evaluate import evaluate_volumes
    from engine.segmentation.infer import segment_names

    pred, truth = read_nrrd(args.pred), read_nrrd(args.truth)
    table = segment_names(pred.meta) or segment_names(truth.meta) or default_label_table()
    try:
        out = evaluate_volumes(pred, truth, table, resample_truth=args.resample_truth)
    except ValueError as err:
        print(f"msmv evaluate: error: {err}", file=sys.stderr)
        return 2
    lines = [f"{'label':>5} {'name':<22} {'dice':>6} {'iou':>6} {'prec':>6} {'recall':>6}"]
    for label, m in out["classes"].items():
        if not m["present"]:
            lines.append(f"{label:>5} {table[int(label)]:<22} absent from truth")
            continue
        lines.append(f"{label:>5} {table[int(label)]:<22} {m['dice']:6.3f} {m['iou']:6.3f} "
                     f"{m['precision']:6.3f} {m['recall']:6.3f}")
    lines.append(f"mean Dice {out['mean_dice']:.4f}, mean IoU {out['mean_iou']:.4f} "
                 f"over {len(out['classes']) - len(out['absent'])} classes")
    _dump(out, args.json, "\n".join(lines))
    return 0


def _measure(args: argparse.Namespace) -> int:
    from engine.imaging.measure import measure
    from engine.imaging.volume import read_nrrd
    from engine.segmentation.checkpoint import default_label_table
    from engine.segmentation.infer import segment_names

    if (args.water is None) != (args.fat is None):
        print("msmv measure: error: --water and --fat go together (fat fraction needs both)", file=sys.stderr)
        return 2
    labels = read_nrrd(args.labels)
    water = read_nrrd(args.water) if args.water else None
    fat = read_nrrd(args.fat) if args.fat else None
    table = segment_names(labels.meta) or default_label_table()
    out = measure(labels, water=water, fat=fat, table=table)
    lines = [f"{'label':>5} {'name':<22} {'cm3':>9} {'left':>9} {'right':>9} {'FF':>6}"]
    for label, s in out["structures"].items():
        lines.append(f"{label:>5} {s['name']:<22} {s['volume_cm3']:9.1f} {s['left_cm3']:9.1f} "
                     f"{s['right_cm3']:9.1f} {s['fat_fraction']:6.3f}")
    lines.append(f"TMV {out['tmv_cm3']:.1f} cm³, P/A {out['pa_ratio']:.3f}, midline from {out['midline_source']}")
    _dump(out, args.json, "\n".join(lines))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from engine.segmentation.checkpoint import (
        DEFAULT_CONTRASTS,
        DEFAULT_OVERLAP,
        STUDY_LR,
        STUDY_MIN_OVERLAP,
        STUDY_WEIGHT_DECAY,
    )
    from store.vocabulary import CONTRASTS

    p = sub.add_parser("segment", help="segment a fused subject with a UNETR checkpoint")
    p.add_argument("fused_dir", help="folder with <contrast>.nrrd from msmv fuse")
    p.add_argument("--checkpoint", help="checkpoint .pt/.json (default: MSMV_HOME/checkpoints/active, "
                                        "else the bundled demo checkpoint)")
    p.add_argument("--out", required=True,
                   help="output label map: .nrrd (3D Slicer segment names in the header) or .nii/.nii.gz (RAS "
                        "affine of the same grid; label table and metadata in a .json sidecar beside it)")
    p.add_argument("--overlap", type=float, help="fixed sliding-window overlap (default: the checkpoint's own "
                                                  f"placement, else {DEFAULT_OVERLAP})")
    p.add_argument("--no-crop", action="store_true", help="tile the whole grid, air included")
    p.add_argument("--threads", type=int, help="CPU threads (torch and ONNX Runtime)")
    p.add_argument("--runtime", choices=("onnx", "torch"), default="onnx",
                   help="network runtime: onnx (default; exported once into MSMV_HOME/work/onnx, several times "
                        "faster on CPU, the same labels) or torch (PyTorch eager)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_segment)

    p = sub.add_parser("train", help="train a UNETR on case folders (<contrast>.nrrd + labels[.seg].nrrd)")
    p.add_argument("data", help="folder of case folders")
    p.add_argument("--out", required=True, help="output folder (best.pt/.json, resumable last.pt)")
    p.add_argument("--val-data", help="folder of validation case folders (default: the first --val-count cases)")
    p.add_argument("--val-count", type=int, default=1)
    p.add_argument("--contrasts", nargs="+", default=list(DEFAULT_CONTRASTS), choices=CONTRASTS)
    p.add_argument("--spacing", type=float, nargs=3, help="mm (default: the study's 1.5 1.5 2.0)")
    p.add_argument("--img-size", type=int, nargs=3, help="patch size, multiples of 16 (default 96 96 96)")
    p.add_argument("--hidden-size", type=int)
    p.add_argument("--mlp-dim", type=int)
    p.add_argument("--num-heads", type=int)
    p.add_argument("--feature-size", type=int)
    p.add_argument("--lr", type=float, default=STUDY_LR)
    p.add_argument("--weight-decay", type=float, default=STUDY_WEIGHT_DECAY)
    p.add_argument("--batch-size", type=int, default=2, help="volumes per step")
    p.add_argument("--crops", type=int, default=4, help="RandCropByPosNegLabel samples per volume")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--epoch-steps", type=int, help="steps per epoch (default: one pass over the cases)")
    p.add_argument("--val-every", type=int, default=2, help="epochs between validations")
    p.add_argument("--min-overlap", type=float, metavar="FRACTION",
                   help="sliding-window placement validated with and recorded in the checkpoint's sidecar, so "
                        "inference uses the same: the fewest windows per axis overlapping by at least FRACTION "
                        f"(the study model's is {STUDY_MIN_OVERLAP}); default: MONAI's fixed grid at overlap "
                        f"{DEFAULT_OVERLAP}")
    p.add_argument("--patience", type=int, default=10, help="validations without improvement before stopping")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                   help="learning-rate schedule: the study's constant, or cosine decay to 0 at --max-steps")
    p.add_argument("--sampling", choices=("posneg", "classes"), default="posneg",
                   help="crop centres: the study's RandCropByPosNegLabel, or RandCropByLabelClasses (every "
                        "structure equally often; helps small muscles)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--half", action="store_true", help="store best weights in float16")
    p.add_argument("--description", help="training data description for the sidecar")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="per-class Dice/IoU/precision/recall of a label map against truth")
    p.add_argument("--pred", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--resample-truth", action="store_true", help="resample truth (nearest) onto the prediction grid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("measure", help="per-structure volumes (L/R), fat fraction, TMV and P/A ratio")
    p.add_argument("--labels", required=True)
    p.add_argument("--water")
    p.add_argument("--fat")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_measure)
