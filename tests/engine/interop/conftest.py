"""Tiny label images for the interop tests, written in code (NIfTI RAS, NRRD LPS)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

# A 10 x 6 x 4 grid of 2 x 2 x 3 mm voxels: 12 mm³ each, whatever the axes' directions.
SHAPE = (10, 6, 4)
VOXEL_MM3 = 2.0 * 2.0 * 3.0
RAS_AFFINE = np.array([[2.0, 0, 0, -9.0], [0, 2.0, 0, 5.0], [0, 0, 3.0, 40.0], [0, 0, 0, 1]])


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray = RAS_AFFINE,
                label_table: dict[int, str] | None = None) -> Path:
    """Write ``data`` as NIfTI; ``label_table`` goes into a Caret XML header extension as TotalSegmentator writes it."""
    img = nib.Nifti1Image(np.asarray(data), affine)
    if label_table:
        body = "".join(f'<Label Key="{k}" Red="1" Green="0" Blue="0" Alpha="1"><![CDATA[{v}]]></Label>\n'
                       for k, v in label_table.items())
        xml = ('<?xml version="1.0" encoding="UTF-8"?> <CaretExtension> <VolumeInformation Index="0"> <LabelTable>'
               f"{body}</LabelTable> </VolumeInformation></CaretExtension>")
        img.header.extensions.append(nib.nifti1.Nifti1Extension(0, xml.encode()))
    nib.save(img, str(path))
    return path


def femora(data: np.ndarray, left: int, right: int) -> None:
    """Two femora, at i = 0-1 (patient left: RAS x is lowest there) and i = 8-9 (patient right): midline x_ras = 0."""
    data[0:2, 0:2, :] = left
    data[8:10, 0:2, :] = right
