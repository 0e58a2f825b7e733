"""Package fixtures shared by the DICOM ingest tests."""

from __future__ import annotations

import shutil

import pytest

from tests.engine.imaging.dicom.dicom_factory import tiny_ukb_specs, write_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The six tiny factory stations as a UKB folder (station 5 stores rescaled values)."""
    root = tmp_path_factory.mktemp("ukb") / "1000001_20201_2_0"
    specs = tiny_ukb_specs()
    specs[4].slope, specs[4].intercept = 0.25, -50.0
    write_folder(root, specs)
    return root


@pytest.fixture
def copy(folder, tmp_path):
    """A private copy of :func:`folder` that a test may damage."""
    dst = tmp_path / "pkg"
    shutil.copytree(folder, dst)
    return dst
