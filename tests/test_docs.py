"""The repository explains itself: no pointer outside it, and every relative link in the docs resolves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this test names the patterns it forbids
NOT_DOCS = {"tests/test_docs.py"}
OUTSIDE = re.compile(r"\.\./shared|ARCHITECTURE\.md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_text_files() -> dict[str, str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = {}
    for rel in out.decode().split("\0"):
        path = ROOT / rel
        if rel and path.is_file():
            try:
                files[rel] = path.read_text()
            except UnicodeDecodeError:
                continue  # binary (checkpoint weights)
    return files


def broken_links(doc: Path, text: str) -> list[str]:
    """Relative links of ``doc`` whose file is missing, or whose #anchor names no heading of that file."""
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        name, _, anchor = target.partition("#")
        path = (doc.parent / name).resolve()
        if name and not path.exists():
            bad.append(target)
        elif anchor and (not name or path.suffix == ".md") \
                and anchor not in _anchors(path.read_text() if name else text):
            bad.append(target)
    return bad


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+\s+(.*)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_nothing_points_outside_the_repository() -> None:
    hits = {rel: [n for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
            for rel, text in tracked_text_files().items() if rel not in NOT_DOCS}
    assert {rel: lines for rel, lines in hits.items() if lines} == {}


def test_the_architecture_page_and_its_neighbours_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for heading in ("## Data flow", "## Layout", "## The store protocol", "## The 27 structures",
                    "## Metric definitions", "## UK Biobank inputs", "## Segmentation", "## Statistics"):
        assert heading in text
    # the DEXA lean masses by their real field IDs, and the study's slip named as one
    for field in ("| arm lean left | 23250 |", "| arm lean right | 23254 |", "| leg lean left | 23267 |",
                  "| leg lean right | 23271 |", "23258 / 23275 / 23280"):
        assert field in text
    assert "23263–23266" in text and "gynoid lean mass" in text
    assert (ROOT / "docs" / "demo-checkpoint.md").is_file()


def test_every_relative_link_in_the_docs_resolves() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(docs) >= 3
    assert {str(d.relative_to(ROOT)): b for d in docs if (b := broken_links(d, d.read_text()))} == {}


def test_the_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# Store protocol\n")
    text = "[ok](there.md) [gone](missing.md) [web](https://example.org/x) [anchor](there.md#store-protocol) " \
           "[bad anchor](there.md#nowhere) [self](#top)\n# Top\n"
    assert broken_links(tmp_path / "doc.md", text) == ["missing.md", "there.md#nowhere"]
    assert _anchors("## Segmentation, training, evaluation and measurement\n### Demo data (`msmv demo`)\n") == {
        "segmentation-training-evaluation-and-measurement", "demo-data-msmv-demo"}
