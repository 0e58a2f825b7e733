"""A small published store in a temporary MSMV_HOME, built by ``msmv demo`` itself (the seeded
simulated cohort written as UKB-style files and imported through the store's importers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dashboard.registry import ROOT
from store.home import Home, home

DEMO_TIMEOUT_S = 600


def build_demo_store(root: Path, n: int = 300, seed: int = 11) -> Home:
    """Run ``msmv --home ROOT demo --n N --seed S`` and return the home it built."""
    cmd = [sys.executable, "-m", "engine.cli", "--home", str(root), "demo", "--n", str(n), "--seed", str(seed), "--phantoms", "0"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`msmv demo --n {n}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return home(root)
