"""``msmv demo`` (build the simulated, calibrated demo store) and ``msmv phantom`` (one synthetic package)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Only light modules at the top (numbers for the help text): the simulator, numpy and tqdm load in the
# handlers, so `msmv --help` does not pay for them.
from engine.demo.cohort import targets as cal
from engine.demo.sizes import DEMO_PHANTOMS
from engine.errors import EngineError
from store.home import home
from store.vocabulary import SEX_CODING, SEX_WORDS, SEXES


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a whole number of participants, found {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 participant, found {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="build the demo store: a simulated UK Biobank cohort calibrated to the study",
        description="Simulate a seeded cohort calibrated to the study's published figures (Table 1, Figs 3-5), "
        "write it as a UK Biobank phenotype CSV and a per-structure metrics Parquet under MSMV_HOME/demo/, "
        "import both through the store's importers (every row flagged simulated) and publish a snapshot.",
    )
    p.add_argument("--n", type=_positive_int, default=cal.N_PARTICIPANTS,
                   help=f"participants to simulate (default {cal.N_PARTICIPANTS:,}, the study's cohort)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    p.add_argument("--phantoms", type=int, default=DEMO_PHANTOMS,
                   help=f"phantom imaging subjects to queue for the engine (default {DEMO_PHANTOMS}, both sexes; "
                        "each sized from a simulated participant's volumes)")
    p.add_argument("--force", action="store_true", help="delete an existing store in MSMV_HOME and rebuild")
    p.set_defaults(func=handler)
    _register_phantom(subparsers)


def handler(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.demo.build import STAGES, build_demo

    target = home()
    with tqdm(total=len(STAGES), desc="demo", unit="stage", file=sys.stderr, leave=False) as bar:

        def on_stage(name: str) -> None:
            if bar.n < STAGES.index(name):
                bar.update(STAGES.index(name) - bar.n)
            bar.set_postfix_str(name)

        build = build_demo(target, args.n, args.seed, force=args.force, phantoms=args.phantoms,
                           on_stage=on_stage)
        bar.update(len(STAGES) - bar.n)

    print(
        f"demo store in {target.root}: {build.n:,} simulated participants ({build.men:,} men, "
        f"{build.n - build.men:,} women), {build.metric_rows:,} structure x side rows, seed {build.seed}, "
        f"store version {build.store_version}"
    )
    print(f"files: {build.phenotype_csv}, {build.metrics_parquet}")
    print(
        "seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in build.seconds.items())
        + f"; total {build.total_seconds:.1f}"
    )
    if build.phantom_packages:
        print(f"{len(build.phantom_packages)} phantom packages queued in {target.inbox} "
              f"(truth in {target.root / 'phantoms'}); `msmv engine` processes them")
    for report in build.reports:
        print(report.summary())
    return 0


def _register_phantom(subparsers: argparse._SubParsersAction) -> None:
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
    p.add_argument("--sex", type=int, choices=SEXES, default=None,
                   help=f"{SEX_CODING} (default: the participant's, or random with --random)")
    p.set_defaults(func=phantom_handler)


def _from_store(eid: int) -> tuple[dict[tuple[str, str], float], int | None]:
    from engine.demo.phantom.subject import volumes_from_metrics
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


def phantom_handler(args: argparse.Namespace) -> int:
    import numpy as np

    from engine.demo.phantom.subject import ANATOMY_STREAM, sample_anatomy, write_truth, write_ukb_zip

    if args.eid <= 0:
        raise EngineError(f"--eid must be a positive participant id, found {args.eid}")
    started = time.perf_counter()
    volumes, sex = (None, None) if args.random else _from_store(args.eid)
    rng = np.random.default_rng([args.seed, args.eid, ANATOMY_STREAM])
    sex = args.sex if args.sex is not None else sex if sex is not None else int(rng.integers(0, 2))
    print(f"sampling anatomy for {args.eid} ({SEX_WORDS[sex]})...", file=sys.stderr)
    anatomy = sample_anatomy(rng, sex=sex, volumes=volumes, seed=args.seed)
    if args.truth is not None:
        write_truth(anatomy, args.truth, eid=args.eid)
    path = write_ukb_zip(anatomy, args.eid, args.out, seed=args.seed, progress=True)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s"
          + (f"; truth in {args.truth}" if args.truth is not None else ""))
    return 0
