"""The full study model on a whole pelvis-to-knee subject, end to end on CPU: seconds per subject.

The study's UNETR (engine.segmentation.checkpoint.STUDY_MODEL: 96³ windows, hidden 768, 12 layers and
heads, MLP 3072, feature size 16, at 1.5 × 1.5 × 2.0 mm) with **random weights** (timing only: its
labels mean nothing) is saved as a checkpoint and run through the engine's own code path on a demo
phantom's UK Biobank package at full resolution (the real fused grid: 224 × 174 in-plane at 2.232 mm
plus the fusion's margin, four stations, pelvis to knee):

    ingest (read the zip) → fuse → segment (engine.segmentation.infer.segment_fused: window, resample,
    body crop, Gaussian sliding window on ONNX Runtime, argmax, back onto the fused grid) → write the
    label map → measure

Printed as JSON: each stage's seconds, the windows and grids, and ``end_to_end_s`` (the sum). The
one-off ONNX export and session start (a worker pays them once per checkpoint) are printed apart as
``setup_s``. ``gflop_per_window`` counts one window's floating-point operations (torch's FlopCounterMode on
the meta device, a multiply-add counted as 2), ``network_gflops`` is what the CPU sustained over the
sliding window, and ``gflops_for_network_in_s`` what a network stage of 20, 30 or 40 s would ask of it
(the floor against which the 40 s goal is judged). The mesh stage is left out: random weights give labels of noise, whose surface says nothing
about a real subject's (benchmarks/engine_throughput.py times meshes on the demo model's labels).

    .venv/bin/python -m benchmarks.full_model [--overlap 0.25 | --min-overlap 0.1] [--sw-batch-size 1] [--threads 2]

Levers, with what they cost: window placement — by default the study sidecar's ``min_overlap``
(STUDY_MIN_OVERLAP: the fewest windows per axis that still overlap by >= 10 %, 30 here), ``--overlap``
for MONAI's fixed grid (0.25 visits 54 windows), ``--min-overlap`` for another minimum;
``--sw-batch-size`` (windows per ONNX Runtime call), ``--threads`` (cores). On
CPU there is no fast half precision (fp16 kernels are GPU-only; bf16 autocast measured ~100x slower on
these cores). A shared machine makes the figures noisy: ``load_avg_1m`` (at the start and the end of the timed stages)
says how busy it was, and ``cpu_s`` (this process's CPU seconds over the timed stages) is what the run
itself cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def window_gflop(model, in_channels: int, img_size) -> float:  # (torch.nn.Module, int, sizes) -> GFLOP
    """Floating-point operations of one window's forward pass (torch's FlopCounterMode: a multiply-add is 2),
    counted on the meta device, so nothing is computed; ``model`` is moved there (pass a copy you can lose)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    meta = model.to("meta").eval()
    x = torch.empty(1, in_channels, *img_size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        meta(x)
    return counter.get_total_flops() / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overlap", type=float, help="MONAI's fixed-overlap grid (default: the sidecar's placement)")
    ap.add_argument("--min-overlap", type=float, help="fewest windows overlapping by at least this")
    ap.add_argument("--sw-batch-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from engine.demo.phantom.subject import add_demo_phantoms
    from engine.imaging.dicom.read import read_package
    from engine.imaging.fusion.fuse import fuse
    from engine.imaging.measure import measure
    from engine.segmentation.checkpoint import (
        STUDY_MIN_OVERLAP,
        STUDY_MODEL,
        Sidecar,
        build_model,
        parameter_count,
        save_checkpoint,
    )
    from engine.segmentation.infer import (
        SegmentTiming,
        body_box,
        load_segmenter,
        prepare_channels,
        segment_fused,
        write_labels,
    )
    from store.home import home as make_home

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="msmv-bench-full-") as tmp:
        base = Path(tmp)
        h = make_home(base / "home").ensure()
        (package,) = add_demo_phantoms(h, count=1, seed=args.seed, progress=False)
        torch.manual_seed(0)
        sidecar = Sidecar(model=STUDY_MODEL, training={"data": "random weights: timing only"},
                          min_overlap=STUDY_MIN_OVERLAP)
        model = build_model(sidecar).eval()
        ckpt, _ = save_checkpoint(base / "study", model, sidecar)
        gflop = window_gflop(model, sidecar.in_channels, sidecar.model.img_size)
        del model
        t0 = time.perf_counter()
        load_segmenter(ckpt, runtime="onnx", onnx_cache=base / "onnx", threads=args.threads)
        setup = time.perf_counter() - t0

        load = os.getloadavg()[0]
        cpu0 = time.process_time()
        stages: dict[str, float] = {}
        t = time.perf_counter()
        stations = read_package(package)
        stages["ingest"] = time.perf_counter() - t
        t = time.perf_counter()
        fused = dict(fuse(stations))
        del stations
        stages["fuse"] = time.perf_counter() - t
        t = time.perf_counter()
        timing = SegmentTiming()
        labels, sc = segment_fused(fused, ckpt, overlap=args.overlap, min_overlap=args.min_overlap, runtime="onnx",
                                   onnx_cache=base / "onnx",
                                   threads=args.threads, sw_batch_size=args.sw_batch_size, timing=timing)
        write_labels(base / "labels.nrrd", labels, sc.labels)
        stages["segment"] = time.perf_counter() - t
        t = time.perf_counter()
        measure(labels, water=fused["water"], fat=fused["fat"], table=sc.labels)
        stages["measure"] = time.perf_counter() - t
        cpu = time.process_time() - cpu0
        load_end = os.getloadavg()[0]
        image, grid = prepare_channels([fused[c] for c in sc.contrasts], sc)  # untimed: the crop's air margin
        tight = [b.stop - b.start for b in body_box(image, grid.spacing, margin_mm=0.0)]
        print(json.dumps({
            "bench": "full_model", "weights": "random (timing only)", "parameters": parameter_count(build_model(sc)),
            "runtime": "onnx", "threads": args.threads, "overlap": timing.extra.get("overlap"),
            "sw_batch_size": args.sw_batch_size,
            "fused_grid": list(fused["water"].shape), "fused_spacing": list(fused["water"].spacing),
            "model_grid": list(timing.model_grid), "body_crop": list(timing.cropped_grid),
            "body_extent_without_margin": tight, "windows": timing.windows,
            "stage_s": {k: round(v, 2) for k, v in stages.items()},
            "segment_parts_s": {"preprocess": round(timing.preprocess_s, 2), "network": round(timing.network_s, 2),
                                "per_window": round(timing.network_s / max(timing.windows, 1), 3),
                                "postprocess": round(timing.postprocess_s, 2)},
            # the network's arithmetic: what the CPU sustained, and what the 40 s goal would ask of it
            "gflop_per_window": round(gflop, 1),
            "network_gflops": round(gflop * timing.windows / max(timing.network_s, 1e-9), 1),
            "gflops_for_network_in_s": {str(s): round(gflop * timing.windows / s, 1) for s in (20, 30, 40)},
            "end_to_end_s": round(sum(stages.values()), 1), "setup_s": round(setup, 1),
            "cpu_s": round(cpu, 1), "load_avg_1m": [round(load, 1), round(load_end, 1)], "cpu_count": os.cpu_count(),
        }), flush=True)


if __name__ == "__main__":
    main()
