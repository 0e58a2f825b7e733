"""Imaging: volumes and their file formats, DICOM ingest, multi-station fusion, measurement, meshes."""
