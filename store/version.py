"""The software version recorded in provenance rows and export sidecars."""

from __future__ import annotations

from importlib import metadata

UNKNOWN_VERSION = "0+unknown"


def code_version() -> str:
    try:
        return metadata.version("msmv")
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION
