"""Install a trained run's best weights as the bundled demo checkpoint and store its held-out score.

    .venv/bin/python scripts/finalize_demo_checkpoint.py data/demo_train/best.pt [SEED]

Copies ``best.pt``/``best.json`` to ``checkpoints/demo_unetr.*``, segments a freshly generated phantom
(``make_phantom(SEED)``, never seen in training) and writes its per-class Dice/IoU into the sidecar's
``metrics.heldout`` (the Model page shows it; a test checks the checkpoint reproduces it). Given the demo
checkpoint itself, nothing is copied and its score is taken again with its sidecar's post-processing
(after ``benchmarks/segmentation_bias.py --store`` changed the calibration).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from engine.demo.phantom.cases import PHANTOM_EVAL_SPACING, evaluate_on_phantom
from engine.segmentation.checkpoint import DEMO_CHECKPOINT, checkpoint_paths, load_checkpoint, store_metrics
from engine.segmentation.evaluate import json_safe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", type=Path, help="the run's best.pt")
    ap.add_argument("seed", type=int, nargs="?", default=7, help="held-out phantom seed (default 7)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    src_w, src_s = checkpoint_paths(args.weights)
    dst_w, dst_s = checkpoint_paths(DEMO_CHECKPOINT)
    dst_w.parent.mkdir(exist_ok=True)
    if src_w.resolve() != dst_w.resolve():  # new weights: their sidecar replaces the old calibration too
        shutil.copyfile(src_w, dst_w)
        shutil.copyfile(src_s, dst_s)
    model, sidecar = load_checkpoint(dst_w)
    scores = evaluate_on_phantom(model, sidecar, args.seed)
    store_metrics(dst_w, heldout=json_safe(scores), heldout_seed=args.seed,
                  heldout_spacing=list(PHANTOM_EVAL_SPACING),
                  heldout_description=f"make_phantom(seed={args.seed}) at {PHANTOM_EVAL_SPACING} mm, "
                                      "scored on that grid"
                                      + (" after the sidecar's calibration" if sidecar.calibration else ""))
    print(f"held-out mean Dice {scores['mean_dice']:.4f}, IoU {scores['mean_iou']:.4f} -> {dst_w}")


if __name__ == "__main__":
    main()
