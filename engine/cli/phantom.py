"""``msmv phantom --eid E --out FILE.zip``: a synthetic Dixon package sized from participant E."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from engine.errors import EngineError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "phantom",
        help="write a phantom subject as a UK Biobank Dixon zip (with ground truth)",
        description="Generate a synthetic pelvis-to-knee subject whose 27 structures (left and right) are sized "
        "from participant E's per-structure volumes in the store (or drawn with --random), and write it "
        "as a UK Biobank bulk zip: six stations x four Dixon contrasts plus manifest.cvs. "
        "--truth DIR also writes labels.nrrd (fused grid of stations 3-6) and truth.json.",
    )
    p.add_argument("--eid", type=int, required=True, help="participant id (its volumes size the phantom)")
    p.add_argument("--out", type=Path, required=True, help="zip to write, e.g. 1000001_20201_2_0.zip")
    p.add_argument("--seed", type=int, default=0, help="random seed for shape, noise and UIDs (default 0)")
    p.add_argument("--truth", type=Path, default=None, help="folder for labels.nrrd + truth.json")
    p.add_argument("--random", action="store_true", help="draw plausible volumes instead of reading the store")
    p.add_argument("--sex", type=int, choices=(0, 1), default=None,
                   help="1 male, 0 female (default: the participant's, or random with --random)")
    p.set_defaults(func=handler)


def _from_store(eid: int) -> tuple[dict[tuple[str, str], float], int | None]:
    from engine.phantom import volumes_from_metrics
    from store.home import home
    from store.reader import Reader

    with Reader(home()) as reader:
        metrics = reader.structure_metrics(eids=[eid])
        people = reader.participants(columns=["eid", "sex"])
    volumes = volumes_from_metrics(metrics, eid)
    if not volumes:
        raise EngineError(f"participant {eid} has no structure volumes in the store; "
                          "choose an eid from the store or use --random")
    row = people[people["eid"] == eid]
    sex = None if row.empty or row["sex"].isna().all() else int(row["sex"].iloc[0])
    return volumes, sex


def handler(args: argparse.Namespace) -> int:
    from engine.phantom import ANATOMY_STREAM, sample_anatomy, write_truth, write_ukb_zip

    if args.eid <= 0:
        raise EngineError(f"--eid must be a positive participant id, found {args.eid}")
    started = time.perf_counter()
    volumes, sex = (None, None) if args.random else _from_store(args.eid)
    rng = np.random.default_rng([args.seed, args.eid, ANATOMY_STREAM])
    sex = args.sex if args.sex is not None else sex if sex is not None else int(rng.integers(0, 2))
    print(f"sampling anatomy for {args.eid} ({'male' if sex == 1 else 'female'})...", file=sys.stderr)
    anatomy = sample_anatomy(rng, sex=sex, volumes=volumes, seed=args.seed)
    if args.truth is not None:
        write_truth(anatomy, args.truth, eid=args.eid)
    path = write_ukb_zip(anatomy, args.eid, args.out, seed=args.seed, progress=True)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s"
          + (f"; truth in {args.truth}" if args.truth is not None else ""))
    return 0
