"""Write a run's last training state (``RUN_DIR/last.pt``) as a checkpoint ``RUN_DIR/final.pt`` + ``final.json``.

    .venv/bin/python scripts/checkpoint_from_state.py RUN_DIR

For a run whose validation does not pick the weights you want (the demo fine-tune validated on the
uncropped grid before ``validate`` used the body box). The sidecar is ``best.json``'s with the training
step, epoch and minutes of the state and without the validation metrics, which belong to other weights.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from engine.segmentation.checkpoint import load_checkpoint, save_checkpoint


def main() -> None:
    run = Path(sys.argv[1])
    model, sidecar = load_checkpoint(run / "best.pt")
    payload = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(payload["model"])
    st = payload["state"]
    training = {**sidecar.training, "steps": st["step"], "epochs": st["epoch"],
                "minutes": round(st["elapsed_s"] / 60, 2),
                "weights": f"last state of the run (step {st['step']}), not the best validation"}
    metrics = {k: v for k, v in sidecar.metrics.items() if not k.startswith("validation_")}
    save_checkpoint(run / "final", model, replace(sidecar, training=training, metrics=metrics), half=True)
    print(f"step {st['step']} -> {run / 'final.pt'}")


if __name__ == "__main__":
    main()
