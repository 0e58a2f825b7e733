"""Building the ``msmv`` parser (what ``msmv --help`` does) loads no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
# Each costs from a tenth of a second to seconds at import; none is needed to print help.
HEAVY = ("pandas", "numpy", "numba", "duckdb", "torch", "vtk", "pyvista", "monai", "scipy", "streamlit",
         "pyarrow", "pydicom", "plotly", "tqdm")  # fmt: skip


def _modules_after(code: str) -> set[str]:
    """Top-level modules loaded in a fresh interpreter after ``code`` (this process has them all)."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_building_the_parser_imports_nothing_heavy() -> None:
    loaded = _modules_after("import engine.cli\nengine.cli.build_parser()")
    assert "engine" in loaded and "store" in loaded  # the probe did run the CLI's discovery
    assert sorted(loaded.intersection(HEAVY)) == []


def test_the_probe_sees_a_heavy_import() -> None:
    # the same probe on a command's own module reports what it loads, so an empty answer above means something
    assert {"numpy", "pandas", "duckdb"} <= _modules_after("import engine.service.coordinator")


def test_defaults_shown_in_help_come_through() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo"]).n == 37_004  # the study's cohort ("37,004 participants")
    assert parser.parse_args(["demo"]).phantoms == 6
    assert parser.parse_args(["export", "--out", "x.csv"]).min_count == 5  # UK Biobank small-cell rule
    assert parser.parse_args(["fuse", "a.zip", "--out", "o", "--stations", "6,3"]).stations == (3, 6)
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"demo", "phantom", "fuse", "segment", "train", "evaluate", "measure", "engine", "submit", "jobs",
            "import-phenotypes", "import-metrics", "export", "status", "settings"} <= set(sub.choices)
    assert "(default 3,4,5,6: pelvis" in " ".join(sub.choices["fuse"].format_help().split())


def test_segment_runs_on_onnx_runtime_unless_torch_is_asked_for() -> None:
    parser = build_parser()
    assert parser.parse_args(["segment", "fused", "--out", "l.nrrd"]).runtime == "onnx"
    assert parser.parse_args(["segment", "fused", "--out", "l.nrrd", "--runtime", "torch"]).runtime == "torch"
