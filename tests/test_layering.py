"""The layering of the house, read from the source with ``ast`` (imports inside functions included).

Imports point one way, ``pages -> dashboard -> engine -> store``; Streamlit lives only in the UI
layers; the demo is fenced off from the production path; and ``store`` is the only package that speaks
SQL. A rule broken anywhere fails here with the file, the line and what was imported or written.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("engine", "store", "dashboard", "pages")
UI_LAYERS = ("dashboard", "pages")
# The production subpackages of the engine; engine.cli may import the demo (it is the `msmv demo` command).
DEMO_FREE = ("engine.imaging", "engine.segmentation", "engine.cohort", "engine.service")
FORBIDDEN_IMPORTS: dict[str, tuple[str, ...]] = {
    "store": ("engine", "dashboard", "pages"),
    "engine": ("dashboard", "pages"),
}
# A string literal that reads like a SQL statement: a verb with the clause it needs (upper case, whole words,
# across lines), so prose such as "select a cohort from the sidebar" does not count.
SQL_PATTERN = re.compile(
    r"\b(?:(?:SELECT|DELETE)\b.*\bFROM|INSERT\s+INTO|UPDATE\b.*\bSET"
    r"|(?:CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|INDEX|SEQUENCE))\b",
    re.DOTALL,
)


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the tree's root, with forward slashes
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.detail}"


def module_name(path: Path, root: Path) -> str:
    """``engine/imaging/dicom/read.py`` -> ``engine.imaging.dicom.read`` (``__init__`` names its package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imported_names(tree: ast.AST, module: str, *, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` for every import anywhere in ``tree``, relative imports resolved.

    ``from a import b`` yields both ``a`` and ``a.b``, so ``from engine import demo`` is seen as
    importing ``engine.demo``.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"


def _sql_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_PATTERN.search(node.value):
            yield node.lineno, node.value


def check_file(path: Path, root: Path) -> list[Violation]:
    """Every layering rule broken by one source file."""
    rel = path.relative_to(root).as_posix()
    module = module_name(path, root)
    layer = module.split(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    found: list[Violation] = []
    seen: set[tuple[int, str]] = set()
    for line, name in imported_names(tree, module, is_package=path.name == "__init__.py"):
        top = name.split(".")[0]
        rules = []
        if top in FORBIDDEN_IMPORTS.get(layer, ()):
            rules.append(f"{layer} imports {top}")
        if top == "streamlit" and layer not in UI_LAYERS:
            rules.append("streamlit outside dashboard/ and pages/")
        if top == "duckdb" and layer != "store":
            rules.append("SQL outside store/ (duckdb imported)")
        if _within(name, "engine.demo") and any(_within(module, p) for p in DEMO_FREE):
            rules.append("production engine imports engine.demo")
        for rule in rules:
            if (line, rule) not in seen:  # `from a import b` yields a and a.b; report the line once
                seen.add((line, rule))
                found.append(Violation(rel, line, rule, name))
    if layer != "store":
        for line, text in _sql_literals(tree):
            found.append(Violation(rel, line, "SQL outside store/", " ".join(text.split())[:80]))
    return found


def source_files(root: Path) -> list[Path]:
    return sorted(p for layer in LAYERS if (root / layer).is_dir() for p in (root / layer).rglob("*.py"))


def check_tree(root: Path) -> list[Violation]:
    """Every layering rule broken under ``root``'s engine/, store/, dashboard/ and pages/."""
    return [v for path in source_files(root) for v in check_file(path, root)]


# ------------------------------------------------------------------------ the repository


def test_the_repository_keeps_its_layers() -> None:
    violations = check_tree(ROOT)
    assert not violations, "layering broken:\n" + "\n".join(map(str, violations))


def test_the_walk_reads_every_layer() -> None:
    # A walk that silently found nothing would pass the test above; these files exist and import across layers.
    files = {p.relative_to(ROOT).as_posix() for p in source_files(ROOT)}
    for layer in LAYERS:
        assert any(f.startswith(layer + "/") for f in files), layer
    tree = ast.parse((ROOT / "pages" / "cohort.py").read_text(encoding="utf-8"))
    names = {n for _, n in imported_names(tree, "pages.cohort", is_package=False)}
    assert "streamlit" in names and "dashboard.ui" in names


# ------------------------------------------------------------------------ the checker catches what it should


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_finds_planted_violations(tmp_path: Path) -> None:
    _plant(tmp_path, {
        "store/__init__.py": "",
        "store/reader.py": "import duckdb\nQ = 'SELECT eid FROM participants WHERE sex = ?'\n",  # allowed in store
        "store/bad.py": "def f():\n    from engine.cohort import stats\n    return stats\n",  # inside a function
        "engine/__init__.py": "",
        "engine/cohort/__init__.py": "",
        "engine/cohort/tables.py": "import pandas as pd\nimport dashboard.ui as ui\n",
        "engine/service/jobs.py": "import streamlit as st\nfrom engine import demo\n",
        "engine/segmentation/train.py": "def cases():\n    from ..demo.phantom import render\n    return render\n",
        "engine/imaging/measure.py": "SQL = f'''\n    UPDATE jobs\n    SET status = {1}\n'''\n",
        "engine/cli/demo.py": "from engine.demo.build import build\n",  # the CLI's demo command may
        "engine/demo/build.py": "from engine.demo.cohort import draw\nimport store.writer\n",
        "dashboard/ui.py": "import streamlit as st\nimport duckdb\nNOTE = 'select a row from the table'\n",
        "pages/cohort.py": "import streamlit as st\nfrom . import helpers\nQ = \"INSERT INTO x VALUES (1)\"\n",
        "scripts/tool.py": "import streamlit\n",  # outside the walked layers
    })  # fmt: skip
    got = {(v.path, v.line, v.rule) for v in check_tree(tmp_path)}
    assert got == {
        ("store/bad.py", 2, "store imports engine"),
        ("engine/cohort/tables.py", 2, "engine imports dashboard"),
        ("engine/service/jobs.py", 1, "streamlit outside dashboard/ and pages/"),
        ("engine/service/jobs.py", 2, "production engine imports engine.demo"),
        ("engine/segmentation/train.py", 2, "production engine imports engine.demo"),
        ("engine/imaging/measure.py", 1, "SQL outside store/"),
        ("dashboard/ui.py", 2, "SQL outside store/ (duckdb imported)"),
        ("pages/cohort.py", 3, "SQL outside store/"),
    }


def test_relative_imports_resolve_against_the_package() -> None:
    tree = ast.parse("from . import a\nfrom ..demo import b\nfrom .c import d\n")
    as_module = {n for _, n in imported_names(tree, "engine.segmentation.train", is_package=False)}
    assert {"engine.segmentation.a", "engine.demo.b", "engine.segmentation.c.d"} <= as_module
    as_package = {n for _, n in imported_names(tree, "engine.segmentation", is_package=True)}
    assert {"engine.segmentation.a", "engine.demo.b", "engine.segmentation.c.d"} <= as_package


@pytest.mark.parametrize(
    ("text", "is_sql"),
    [
        ("SELECT * FROM t", True),
        ("CREATE TABLE jobs (id INTEGER)", True),
        ("DELETE FROM jobs WHERE id = ?", True),
        ("UPDATE jobs\n   SET status = 'done'", True),
        ("INSERT INTO jobs VALUES (?)", True),
        ("CREATE OR REPLACE VIEW wide AS SELECT 1", True),
        ("select the cohort from the sidebar", False),  # prose, lower case
        ("SELECT a metric", False),  # a verb without a clause
        ("UPDATED FROM disk", False),  # whole words only
    ],
)
def test_sql_pattern(text: str, is_sql: bool) -> None:
    assert bool(SQL_PATTERN.search(text)) is is_sql
