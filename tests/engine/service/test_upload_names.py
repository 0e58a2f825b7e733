"""Messages about an upload name the file the user uploaded, not the copy staged in the inbox."""

from __future__ import annotations

from pathlib import Path

from engine.service import inbox
from store.home import home as make_home


def test_a_rejected_upload_names_the_uploaded_file_not_the_staged_copy(tmp_path: Path) -> None:
    home = make_home(tmp_path / "msmv")
    result = inbox.submit_upload(home, "my_scan.zip", b"not a zip")
    assert result.status == "rejected" and result.source == "my_scan.zip"
    assert result.message == "my_scan.zip: not a zip archive; expected a UK Biobank Dixon zip (field 20201)"
    assert ".incoming-" not in result.message
