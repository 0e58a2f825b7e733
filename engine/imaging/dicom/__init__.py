"""DICOM ingest: safe package access, a fast header reader, slices, and stations of a Dixon package."""
