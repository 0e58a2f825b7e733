"""MSMV engine: DICOM ingest, fusion, segmentation, measurement, statistics, simulation, service."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("msmv")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
