"""One 96³ window of the full study model on ONNX Runtime (CPU): wall and CPU seconds per session option set.

The study UNETR (engine.segmentation.checkpoint.STUDY_MODEL) with **random weights** (timing only) is
exported once; each option set then gets a fresh session, one warm-up run and ``--repeats`` timed
runs of one window. CPU seconds (``time.process_time``, every thread of this process) are reported
beside wall seconds because on a shared machine the wall time mostly measures the neighbours.

    .venv/bin/python -m benchmarks.study_window [--threads 2] [--repeats 3]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch

    from engine.segmentation.checkpoint import STUDY_MODEL, Sidecar, build_model
    from engine.segmentation.infer import export_onnx, onnx_predictor

    torch.manual_seed(0)
    sidecar = Sidecar(model=STUDY_MODEL)
    x = torch.rand(1, sidecar.in_channels, *sidecar.model.img_size)
    with tempfile.TemporaryDirectory(prefix="msmv-bench-window-") as tmp:
        path = export_onnx(build_model(sidecar).eval(), sidecar, Path(tmp) / "study.onnx")

        def bare(**changes: object):  # ORT's own defaults, then the changes named
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            for key, value in changes.items():
                if key.startswith("config:"):
                    opts.add_session_config_entry(key[7:], str(value))
                else:
                    setattr(opts, key, value)
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            return lambda t: torch.from_numpy(session.run(["logits"], {"image": t.numpy()})[0])

        variants = {
            "ort_defaults_spinning": bare(),
            "ort_basic_optimisation": bare(graph_optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC),
            "engine_onnx_predictor": onnx_predictor(path, threads=args.threads),
        }
        rows = {}
        reference = None
        for name, run in variants.items():
            out = run(x)  # warm-up (allocations, thread pool)
            reference = out if reference is None else reference
            wall, cpu = [], []
            for _ in range(args.repeats):
                w, c = time.perf_counter(), time.process_time()
                run(x)
                wall.append(time.perf_counter() - w)
                cpu.append(time.process_time() - c)
            rows[name] = {"wall_s": round(float(np.median(wall)), 3), "cpu_s": round(float(np.median(cpu)), 3),
                          "max_abs_diff_vs_first": float((out - reference).abs().max())}
        print(json.dumps({"bench": "study_window", "weights": "random (timing only)", "threads": args.threads,
                          "repeats": args.repeats, "onnxruntime": ort.__version__, "variants": rows,
                          "load_avg_1m": round(os.getloadavg()[0], 1)}), flush=True)


if __name__ == "__main__":
    main()
