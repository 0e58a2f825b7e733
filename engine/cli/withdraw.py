"""``msmv withdraw FILE``: remove participants who withdrew from UK Biobank, keeping only that they did."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from store.home import home


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "withdraw",
        help="remove withdrawn participants' rows, files and snapshot copies; later imports refuse them",
        description="Delete every row, artifact, package, error-report row and snapshot copy of the listed "
                    "participants, and record the withdrawal (eid and date only) so later imports refuse them. "
                    "Needs the single writer: stop the engine service first.",
    )
    p.add_argument("file", type=Path, help="UK Biobank withdrawal list: one eid per line; blank lines and # "
                                           "comments ignored")
    p.set_defaults(func=_withdraw)


def _withdraw(args: argparse.Namespace) -> int:
    # DuckDB and pandas load here, not when the parser is built (`msmv --help` stays fast)
    from store.withdrawals import read_withdrawal_file
    from store.writer import Writer

    eids, problems = read_withdrawal_file(args.file)
    for problem in problems:
        print(f"msmv withdraw: {args.file}: {problem}", file=sys.stderr)
    if not eids:
        print(f"msmv withdraw: {args.file} names no participant; nothing removed", file=sys.stderr)
        return 1
    with Writer(home()) as w:
        report = w.withdraw(eids, problems=problems)
    print(report.summary())
    return 1 if problems else 0
