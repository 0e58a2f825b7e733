"""Whole-subject CPU segmentation time: MSMV's pipeline against MONAI's plain sliding window.

For the demo configuration (the committed checkpoint) and the study's full configuration (random
weights: timing only), on a phantom padded to the UKB fused field of view (224 × 174 voxels at
2.232 mm in-plane), this prints JSON lines with:

- ``per_window``: seconds for one window forward, PyTorch eager vs ONNX Runtime (CPU provider);
- ``windows``: windows needed over the uncropped grid vs the body crop, at several overlaps;
- ``run``: measured seconds of MONAI's ``sliding_window_inference`` over the uncropped volume
  (the baseline) and of :func:`engine.segmentation.infer.segment_channels` (body crop, Gaussian blending) with
  PyTorch and with ONNX Runtime at the same overlap, their ratio, and the label agreement ONNX vs torch.

``--z-mm`` limits the phantom's superior-inferior extent (the full study model on two shared cores
takes minutes per run); the printed ``grid`` says what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.imaging.volume import Volume  # noqa: E402
from engine.segmentation.checkpoint import DEMO_CHECKPOINT, STUDY_MODEL, Sidecar, build_model, load_checkpoint  # noqa: E402
from engine.segmentation.infer import (  # noqa: E402
    SegmentTiming,
    body_box,
    count_windows,
    export_onnx,
    infer_logits,
    onnx_predictor,
    prepare_channels,
    segment_channels,
    torch_predictor,
)
from store.vocabulary import CONTRASTS  # noqa: E402

UKB_INPLANE = (224, 174)  # fused grid columns × rows at 2.232 mm (docs/architecture.md, "The Dixon package")
UKB_SPACING = (2.232, 2.232, 3.0)




def phantom_channels(seed: int, z_mm: float | None) -> dict[str, Volume]:
    """The phantom's four Dixon contrasts, padded to the UKB fused field of view (and cut to ``z_mm``)."""
    from engine.demo.phantom.subject import make_phantom

    p = make_phantom(seed, spacing=UKB_SPACING)
    out = {}
    for name in CONTRASTS:
        w = getattr(p, name)
        data = w.data
        if z_mm:
            nz = min(data.shape[2], int(z_mm / UKB_SPACING[2]))
            start = (data.shape[2] - nz) // 2
            data = data[:, :, start:start + nz]
        pad = [(max(0, (n - s) // 2), max(0, n - s - (n - s) // 2))
               for n, s in zip(UKB_INPLANE, data.shape[:2], strict=True)]
        data = np.pad(data, [*pad, (0, 0)])
        origin = tuple(o - p0 * s for o, (p0, _), s in zip(w.origin[:2], pad, UKB_SPACING[:2], strict=True)) + (w.origin[2],)
        out[name] = Volume(data.astype(np.float32), UKB_SPACING, origin)
    return out


def z_slab(volume: Volume, z_mm: float | None) -> Volume:
    """The central ``z_mm`` of ``volume`` (all of it when ``z_mm`` is falsy)."""
    if not z_mm:
        return volume
    nz = min(volume.shape[2], int(z_mm / UKB_SPACING[2]))
    start = (volume.shape[2] - nz) // 2
    origin = (*volume.origin[:2], volume.origin[2] + start * UKB_SPACING[2])
    return Volume(volume.data[:, :, start:start + nz], volume.spacing, origin)


def timed(fn, repeats: int = 1) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench(name: str, model: torch.nn.Module, sidecar: Sidecar, channels: dict[str, Volume],
          args: argparse.Namespace) -> None:
    roi = sidecar.model.img_size
    inputs = [channels[c] for c in sidecar.contrasts]
    water = inputs[0]
    image, grid = prepare_channels(inputs, sidecar)
    box = body_box(image, grid.spacing)
    cropped = tuple(s.stop - s.start for s in box)
    windows = {str(ov): {"uncropped": count_windows(grid.shape, roi, ov), "body_crop": count_windows(cropped, roi, ov)}
               for ov in (0.5, 0.25, 0.1, 0.0)}
    x = torch.rand(1, sidecar.in_channels, *roi)
    eager = torch_predictor(model)
    eager(x)
    t_eager = timed(lambda: eager(x), 2)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = export_onnx(model, sidecar, Path(tmp) / "m.onnx")
        t_export = time.perf_counter() - t0
        ort = onnx_predictor(path, threads=args.threads)
        ort(x)
        t_ort = timed(lambda: ort(x), 2)
        print(json.dumps({"config": name, "load_avg_1m": round(os.getloadavg()[0], 1), "per_window_s": {"torch_eager": round(t_eager, 3), "onnxruntime": round(t_ort, 3)},
                          "onnx_export_s": round(t_export, 1), "threads": args.threads,
                          "model_grid": grid.shape, "body_crop": cropped, "windows": windows}), flush=True)
        if args.skip_runs:
            return
        if args.onnx_only:  # the whole-subject goal: body crop + ONNX Runtime, no baseline
            timing = SegmentTiming()
            t0 = time.perf_counter()
            segment_channels(inputs, None, sidecar, predictor=ort, overlap=args.overlap, timing=timing)
            print(json.dumps({"config": name, "overlap": args.overlap, "fused_grid": water.shape,
                              "load_avg_1m": round(os.getloadavg()[0], 1),
                              "msmv_onnx": {"total_s": round(time.perf_counter() - t0, 2),
                                            "network_s": round(timing.network_s, 2), "windows": timing.windows}}),
                  flush=True)
            return
        t0 = time.perf_counter()
        base = infer_logits(image, roi, eager, overlap=args.overlap).argmax(0)
        t_base = time.perf_counter() - t0
        runs = {}
        labels = {}
        for runtime, pred in (("torch", eager), ("onnxruntime", ort)):
            timing = SegmentTiming()
            t0 = time.perf_counter()
            labels[runtime] = segment_channels(inputs, None, sidecar, predictor=pred, overlap=args.overlap,
                                               timing=timing).data
            runs[runtime] = {"total_s": round(time.perf_counter() - t0, 2), "network_s": round(timing.network_s, 2),
                             "windows": timing.windows}
        agree = float(np.mean(labels["torch"] == labels["onnxruntime"]))
        print(json.dumps({
            "config": name, "overlap": args.overlap, "fused_grid": water.shape,
            "monai_uncropped": {"network_s": round(t_base, 2), "windows": windows[str(args.overlap)]["uncropped"],
                                "foreground_voxels": int((base > 0).sum())},
            "msmv": runs, "speedup_torch": round(t_base / runs["torch"]["total_s"], 2),
            "speedup_onnx": round(t_base / runs["onnxruntime"]["total_s"], 2),
            "onnx_vs_torch_label_agreement": round(agree, 6),
        }), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--z-mm", type=float, default=None, help="limit the phantom's SI extent (mm)")
    ap.add_argument("--study-z-mm", type=float, default=240.0,
                    help="SI extent for the full study model run (0: the whole subject)")
    ap.add_argument("--configs", default="demo,study")
    ap.add_argument("--skip-runs", action="store_true", help="per-window and window counts only")
    ap.add_argument("--onnx-only", action="store_true",
                    help="time only MSMV's body crop + ONNX Runtime (the whole-subject <= 60 s goal), no baseline")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    full = phantom_channels(args.seed, args.z_mm)
    for name in args.configs.split(","):
        if name == "demo":
            model, sidecar = load_checkpoint(DEMO_CHECKPOINT)
            bench("demo", model, sidecar, full, args)
        elif name == "study":
            sidecar = Sidecar(model=STUDY_MODEL)
            model = build_model(sidecar).eval()
            bench("study", model, sidecar, {k: z_slab(v, args.study_z_mm) for k, v in full.items()}, args)


if __name__ == "__main__":
    main()
