"""The ``msmv`` command line.

Each module in this package adds its own subcommands: it defines ``register(subparsers)`` which adds
parsers whose ``func`` default is ``handler(args) -> int``. Modules are discovered, so a new command
is a new file here and nothing else changes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from engine.errors import EngineError
from store.errors import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msmv",
        description="MSMV: per-muscle thigh volumetry from UK Biobank Dixon MRI.",
    )
    parser.add_argument("--home", help="data folder (default: $MSMV_HOME or ./data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = os.environ.get("MSMV_HOME")
    if args.home:
        os.environ["MSMV_HOME"] = args.home  # for this command only (main() may be called in-process)
    try:
        return int(args.func(args) or 0)
    except (EngineError, StoreError, FileNotFoundError) as err:
        print(f"msmv {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if args.home:
            if previous is None:
                os.environ.pop("MSMV_HOME", None)
            else:
                os.environ["MSMV_HOME"] = previous


if __name__ == "__main__":
    sys.exit(main())
