"""Every page has one shape and one read path: a ``main()`` over ``dashboard`` loaders, nothing else at top level.

Pages are walked as source (AST), so a new page is covered without editing this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dashboard.registry import ROOT

PAGE_FILES = sorted((ROOT / "pages").glob("*.py"))
# Modules that read the store, the inbox or the queue: pages reach them only through dashboard.data.
FORBIDDEN_IMPORTS = ("duckdb", "store.reader", "store.home", "engine.service.inbox")
FORBIDDEN_NAMES = {"store": {"Reader", "reader", "home"}, "engine.service": {"inbox"}}


def _is_constant(node: ast.stmt) -> bool:
    """``NAME = <literal>`` with an upper-case name: a definition, not logic."""
    if isinstance(node, ast.Assign):
        targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets, value = [node.target], node.value
    else:
        return False
    names = [t.id for t in targets if isinstance(t, ast.Name)]
    if len(names) != len(targets) or not all(n.lstrip("_").isupper() for n in names):
        return False
    try:
        ast.literal_eval(value)
    except ValueError:
        return False
    return True


def _is_main_call(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "main"
            and not node.value.args and not node.value.keywords)


def shape_problems(source: str) -> list[str]:
    """What keeps ``source`` from the page shape: ``main()`` defined, called last, nothing else run at import."""
    body = ast.parse(source).body
    problems = []
    if not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in body):
        problems.append("defines no main()")
    if not body or not _is_main_call(body[-1]):
        problems.append("does not end with a main() call")
    for i, node in enumerate(body[:-1] if body and _is_main_call(body[-1]) else body):
        docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        definition = isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef)
        if not (docstring or definition or _is_constant(node)):
            problems.append(f"line {node.lineno}: top-level {type(node).__name__} (move it into a function)")
    return problems


def import_problems(source: str) -> list[str]:
    """Imports of a store reader, the store's location, DuckDB or the inbox, anywhere in ``source``."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            bad = FORBIDDEN_NAMES.get(node.module, set()) & {a.name for a in node.names}
            problems += [f"line {node.lineno}: imports {node.module}.{n}" for n in sorted(bad)]
        else:
            continue
        problems += [f"line {node.lineno}: imports {m}" for m in modules
                     if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_IMPORTS)]
    return problems


def test_pages_exist() -> None:
    assert {p.name for p in PAGE_FILES} >= {"cohort.py", "subject.py", "export.py", "jobs.py"}


@pytest.mark.parametrize("page", PAGE_FILES, ids=[p.stem for p in PAGE_FILES])
def test_page_is_a_main_over_loaders(page: Path) -> None:
    assert shape_problems(page.read_text()) == []


@pytest.mark.parametrize("page", PAGE_FILES, ids=[p.stem for p in PAGE_FILES])
def test_page_reads_only_through_dashboard(page: Path) -> None:
    assert import_problems(page.read_text()) == []


def test_shape_check_catches_top_level_logic() -> None:
    page = ('"""Doc."""\nimport streamlit as st\n\nLIMIT = 5\nst.title("x")\nh = home()\n\n\n'
            'def main() -> None:\n    pass\n\n\nmain()\n')
    assert shape_problems(page) == ["line 5: top-level Expr (move it into a function)",
                                    "line 6: top-level Assign (move it into a function)"]
    assert shape_problems("import streamlit as st\n\n\ndef render() -> None:\n    pass\n\n\nrender()\n") == [
        "defines no main()", "does not end with a main() call", "line 8: top-level Expr (move it into a function)"]
    assert shape_problems("FORMAT = {'a': st.column_config.TextColumn('A')}\n\n\ndef main():\n    pass\n\n\n"
                          "main()\n") == ["line 1: top-level Assign (move it into a function)"]


def test_import_check_catches_each_way_round_the_loaders() -> None:
    page = ("import duckdb\nfrom store.reader import Reader\nfrom store import Reader, metrics\n"
            "from engine.service import inbox\nimport engine.service.inbox\nfrom store.home import home\n"
            "from store.metrics import COLUMNS\n\n\ndef main():\n    from store.reader import Reader\n")
    assert import_problems(page) == [
        "line 1: imports duckdb", "line 2: imports store.reader", "line 3: imports store.Reader",
        "line 4: imports engine.service.inbox", "line 5: imports engine.service.inbox",
        "line 6: imports store.home", "line 11: imports store.reader"]
