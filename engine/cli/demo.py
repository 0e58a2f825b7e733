"""``msmv demo [--n N] [--seed S] [--force]``: build the simulated, calibrated demo store."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from engine import calibration as cal
from engine.phantom import DEMO_COUNT as PHANTOM_COUNT
from engine.simulate_build import STAGES, build_demo
from store.home import home


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
    p.add_argument("--phantoms", type=int, default=PHANTOM_COUNT,
                   help=f"phantom imaging subjects to queue for the engine (default {PHANTOM_COUNT}, both sexes; "
                        "each sized from a simulated participant's volumes)")
    p.add_argument("--force", action="store_true", help="delete an existing store in MSMV_HOME and rebuild")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
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
