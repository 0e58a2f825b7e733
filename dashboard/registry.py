"""The dashboard's pages, in navigation order; only page files that exist are registered.

Pages are built by different people at different times: ``PAGES`` lists those present so the app
and the smoke test (tests/dashboard/test_pages_smoke.py) pick a new page up without being edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root: pages/ lives beside dashboard/


@dataclass(frozen=True)
class PageSpec:
    """One page of the dashboard."""

    file: str  # relative to the repository root
    title: str
    icon: str  # a Streamlit material icon
    url_path: str

    @property
    def path(self) -> Path:
        return ROOT / self.file


NAVIGATION: tuple[PageSpec, ...] = (
    PageSpec("pages/cohort.py", "Cohort", ":material/groups:", "cohort"),
    PageSpec("pages/concordance.py", "Concordance", ":material/scatter_plot:", "concordance"),
    PageSpec("pages/agreement.py", "Method agreement", ":material/compare_arrows:", "agreement"),
    PageSpec("pages/associations.py", "Associations", ":material/forest:", "associations"),
    PageSpec("pages/subject.py", "Subject", ":material/person:", "subject"),
    PageSpec("pages/model.py", "Model", ":material/model_training:", "model"),
    PageSpec("pages/quality.py", "Quality", ":material/fact_check:", "quality"),
    PageSpec("pages/export.py", "Export", ":material/download:", "export"),
    PageSpec("pages/jobs.py", "Jobs", ":material/work_history:", "jobs"),
)


def registered_pages(navigation: tuple[PageSpec, ...] = NAVIGATION) -> tuple[PageSpec, ...]:
    """The pages of ``navigation`` whose file exists, in order."""
    return tuple(p for p in navigation if p.path.is_file())


PAGES: tuple[PageSpec, ...] = registered_pages()
