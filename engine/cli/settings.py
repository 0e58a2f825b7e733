"""``msmv settings``: the value of every setting, or the README's settings table."""

from __future__ import annotations

import argparse

from store import settings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "settings", help="print settings (MSMV_* variables, Streamlit's server options) and their values",
        description="Without arguments, every setting with its current value; with NAMEs, only their values, "
                    "one per line (for scripts). --markdown prints the README's settings table.")
    p.add_argument("names", nargs="*", metavar="NAME", help="settings to print, e.g. MSMV_HOME server.port")
    p.add_argument("--markdown", action="store_true", help="the settings table with defaults, as in README.md")
    p.set_defaults(func=run_settings)


def run_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings.markdown(), end="")
    elif args.names:
        for name in args.names:
            print(settings.show(settings.get(name)))
    else:
        width = max(len(s.name) for s in settings.SETTINGS)
        for s in settings.SETTINGS:
            print(f"{s.name:<{width}}  {settings.show(settings.get(s.name))}")
    return 0
