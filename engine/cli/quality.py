"""``msmv qc [--json]``: the subjects whose stored results raise QC flags, with the reasons and numbers."""

from __future__ import annotations

import argparse
import json
import math
import sys

from store.home import home


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "qc", help="list QC-flagged subjects (low confidence, volume outliers, missing structures, ...)",
        description="Compute the QC flags of every imaged subject from the published store (no re-segmentation) "
                    "and list the flagged ones, most flags first. The checks and thresholds are in "
                    "engine/quality/checks.py.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object: counts per check and the flagged "
                                                       "subjects with every flag")
    p.set_defaults(func=_qc)


def _clean(v: object) -> object:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _qc(args: argparse.Namespace) -> int:
    # pandas, NumPy and DuckDB load here, not when the parser is built (`msmv --help` stays fast)
    from engine.quality import stored_report
    from store.reader import Reader

    with Reader(home()) as reader:
        report = stored_report(reader)
    flagged = report.flagged
    if args.json:
        by_eid = {int(e): g for e, g in report.flags.groupby("eid")}
        out = {
            "imaged": len(report.subjects), "flagged": len(flagged),
            "checks": report.counts().to_dict(orient="records"),
            "subjects": [{"eid": int(r.eid), "qc_flag_count": int(r.qc_flag_count),
                          "flags": [{k: _clean(v) for k, v in f.items() if k != "eid"}
                                    for f in by_eid[int(r.eid)].to_dict(orient="records")]}
                         for r in flagged.itertuples()],
        }
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    print(f"{len(flagged):,} of {len(report.subjects):,} imaged subjects flagged")
    for c in report.counts().itertuples():
        if c.flags:
            print(f"  {c.code:<18} {c.subjects:>6,} subjects  {c.flags:>6,} flags  ({c.check})")
    by_eid = {int(e): g for e, g in report.flags.groupby("eid")} if len(flagged) else {}
    for r in flagged.itertuples():
        print(f"\n{int(r.eid)}  ({int(r.qc_flag_count)} flag{'s' if r.qc_flag_count != 1 else ''})")
        for reason, code in zip(by_eid[int(r.eid)]["reason"], by_eid[int(r.eid)]["code"], strict=True):
            print(f"  {code}: {reason}")
    return 0
