"""``msmv import-labels PATH... --format {musclemap,totalsegmentator,labelmap}``: other tools' segmentations."""

from __future__ import annotations

import argparse
import sys

from store.vocabulary import FIRST_IMAGING_INSTANCE

# the owner of this list is engine.interop.importer.FORMATS; repeated here only so that building the
# parser imports no numpy (a test checks it) -- test_interop_cli checks the two agree
_FORMATS = ("musclemap", "totalsegmentator", "labelmap")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a participant ID (a positive whole number), found {text!r}") from err
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a participant ID (a positive whole number), found {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-labels",
        help="import other tools' segmentations (MuscleMap, TotalSegmentator, any label map) as a metric source",
        description="Read label maps written by MuscleMap (sided 4-digit values), TotalSegmentator (a folder of "
                    "binary masks or a multi-label file) or any NIfTI/NRRD/Slicer .seg.nrrd label map with a "
                    "mapping TOML, convert them onto MSMV's 27 structures, measure them (sided labels keep "
                    "their side; unsided ones are split at the midline) and store them as their own source. "
                    "The results commit through the store's single writer: this command commits them itself "
                    "when no engine runs, or queues them for the running engine, which commits each as a job "
                    "(msmv jobs).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a label file, a TotalSegmentator mask folder, or a folder of them (one participant each)")
    p.add_argument("--format", required=True, choices=_FORMATS, dest="fmt")
    p.add_argument("--eid", type=_positive, help="participant ID (default: from the name, {eid}_... or sub-{eid}_...)")
    p.add_argument("--mapping", help="mapping TOML (labelmap: required; musclemap/totalsegmentator: laid over the "
                                     "default in engine/interop/mappings/)")
    p.add_argument("--water", help="water image for fat fraction (resampled onto the label grid if needed)")
    p.add_argument("--fat", help="fat image for fat fraction (with --water)")
    p.add_argument("--source", help="name of this metric source (default: the format)")
    p.add_argument("--tool-version", help="version of the tool that wrote the labels (MuscleMap's label set and "
                                          "TotalSegmentator's class order depend on it); default: the GeneratedBy "
                                          "entry of a BIDS dataset_description.json beside the labels, else unknown")
    p.add_argument("--instance", type=int, default=FIRST_IMAGING_INSTANCE,
                   help=f"UK Biobank imaging visit (default {FIRST_IMAGING_INSTANCE})")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    # here, not at the top: numpy and nibabel would slow every command's --help
    from engine.interop.importer import import_labels, report_json, summary
    from engine.interop.mapping import load_mapping
    from store.home import home

    mapping = load_mapping(args.fmt, args.mapping)
    results = import_labels(args.paths, args.fmt, mapping, home=home(), eid=args.eid, water=args.water,
                            fat=args.fat, source=args.source, tool_version=args.tool_version, instance=args.instance)
    if args.json:
        print(report_json(results))
    else:
        for r in results:
            print(summary(r), file=sys.stderr if r.error else sys.stdout)
    queued = sum(1 for r in results if r.queued)
    if queued:
        print(f"msmv import-labels: {queued} import(s) queued in {home().inbox} for the engine that holds the "
              "store's writer; `msmv jobs` shows them (had another command held it, the next `msmv engine` or "
              "`msmv import-labels` commits them)",
              file=sys.stderr)
    failed = sum(1 for r in results if r.error)
    if failed:
        print(f"msmv import-labels: {failed} of {len(results)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
