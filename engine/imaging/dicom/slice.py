"""One DICOM slice: the header values ingest needs, and its pixels (rescaled, float32).

Headers come from the fast reader (:mod:`engine.imaging.dicom.header`) when it can, else from pydicom. A file
the fast reader declines (compressed, malformed, a required tag missing) goes through pydicom, so
pydicom's leniency and the wording of every error stay the same whichever path reads the file.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from engine.errors import DicomError
from engine.imaging.dicom.header import EXPLICIT_VR_LE, IMPLICIT_VR_LE, read_header
from engine.imaging.dicom.package import PackageFile

_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_UNCOMPRESSED = {EXPLICIT_VR_LE, IMPLICIT_VR_LE, _BIG_ENDIAN}
_READ_ERRORS = (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, struct.error, AttributeError)
_KINDS = {(8, False): "u1", (16, False): "u2", (32, False): "u4", (8, True): "i1", (16, True): "i2", (32, True): "i4"}


@dataclass
class Slice:
    """Header values of one image plus a decoder for its stored pixel values."""

    file: str
    sop_uid: str
    series_uid: str
    description: str
    image_type: tuple[str, ...]
    series_number: int
    series_time: str
    iop: np.ndarray  # ImageOrientationPatient (6)
    ipp: np.ndarray  # ImagePositionPatient (3)
    spacing: tuple[float, float]  # (row spacing, column spacing) as PixelSpacing stores it
    rows: int
    cols: int
    thickness: float | None
    slope: float | None
    intercept: float | None
    decode: Callable[[], np.ndarray]  # stored values (rows, cols)
    source: PackageFile | None = None  # the file, so that its bytes can be loaded ahead of decoding
    sop_class: str = ""  # SOPClassUID; "" when the file does not say
    modality: str = ""

    def pixels(self) -> np.ndarray:
        """Pixel values as float32 (rows, cols), RescaleSlope/Intercept applied when present."""
        return self.pixels_into(np.empty((self.rows, self.cols), dtype=np.float32))

    def pixels_into(self, out: np.ndarray) -> np.ndarray:
        """:meth:`pixels` written into ``out`` (float32, (rows, cols), e.g. one slice of a series' stack)."""
        np.copyto(out, self.decode(), casting="unsafe")
        if self.slope is not None or self.intercept is not None:  # in float32, as pixels() has always done
            np.multiply(out, np.float32(1.0 if self.slope is None else self.slope), out=out)
            np.add(out, np.float32(0.0 if self.intercept is None else self.intercept), out=out)
        return out


def _tag_name(keyword: str) -> str:
    tag = pydicom.datadict.tag_for_keyword(keyword)
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else keyword


def _decode_raw(file: str, raw: bytes | memoryview, rows: int, cols: int, bits: int, signed: bool,
                big_endian: bool = False) -> np.ndarray:
    kind = _KINDS.get((bits, signed))
    if kind is None:
        raise DicomError(f"{file}: unsupported BitsAllocated {bits} (expected 8, 16 or 32)")
    dtype = np.dtype(kind).newbyteorder(">" if big_endian else "<")
    need = rows * cols * dtype.itemsize
    if len(raw) < need:
        raise DicomError(f"{file}: truncated PixelData (7FE0,0010): {len(raw)} bytes, expected "
                         f"{need} for {rows}x{cols} at {bits} bits")
    return np.frombuffer(raw, dtype=dtype, count=rows * cols).reshape(rows, cols)


# ---- fast path --------------------------------------------------------------------------------------


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("latin-1").strip(" \0")


def _numbers(raw: bytes | None, n: int) -> np.ndarray | None:
    if raw is None:
        return None
    parts = _text(raw).split("\\")
    if len(parts) != n:
        return None
    return np.array([float(p) for p in parts], dtype=float)


def _fast(pf: PackageFile) -> Slice | None:
    hdr = read_header(pf.head)
    if (hdr is None or hdr.pixel_offset is None) and pf.partial:  # the header is longer than the head
        hdr = read_header(pf.data)
    if hdr is None or hdr.pixel_offset is None:
        return None
    v = hdr.values
    try:
        us = {k: int.from_bytes(v[k][:2], "little") for k in ("Rows", "Columns", "BitsAllocated")}
        signed = int.from_bytes(v.get("PixelRepresentation", b"\0\0")[:2], "little") == 1
        samples = int.from_bytes(v.get("SamplesPerPixel", b"\1\0")[:2], "little")
        iop, ipp, ps = (_numbers(v.get("ImageOrientationPatient"), 6), _numbers(v.get("ImagePositionPatient"), 3),
                        _numbers(v.get("PixelSpacing"), 2))
        sop, uid = _text(v.get("SOPInstanceUID")), _text(v.get("SeriesInstanceUID"))
        number = _text(v.get("SeriesNumber"))
        thickness, slope, intercept = (_text(v.get(k)) for k in ("SliceThickness", "RescaleSlope", "RescaleIntercept"))
        if iop is None or ipp is None or ps is None or not sop or not uid or samples != 1 or (ps <= 0).any():
            return None
        slc = Slice(
            pf.name, sop, uid, _text(v.get("SeriesDescription")), tuple(_text(v.get("ImageType")).split("\\")),
            int(float(number)) if number else 0, _text(v.get("SeriesTime")), iop, ipp,
            (float(ps[0]), float(ps[1])), us["Rows"], us["Columns"],
            float(thickness) if thickness else None, float(slope) if slope else None,
            float(intercept) if intercept else None, lambda: np.empty(0))
    except (KeyError, ValueError):
        return None  # let pydicom read it and word the error
    slc.sop_class, slc.modality = _text(v.get("SOPClassUID")), _text(v.get("Modality"))
    start, stop = hdr.pixel_offset, hdr.pixel_offset + hdr.pixel_length
    slc.decode = lambda: _decode_raw(pf.name, memoryview(pf.data)[start:stop], slc.rows, slc.cols,
                                     us["BitsAllocated"], signed)
    return slc


# ---- pydicom path ------------------------------------------------------------------------------------


def _tag(ds: pydicom.Dataset, keyword: str, file: str) -> object:
    value = ds.get(keyword)
    if value is None or value == "":
        raise DicomError(f"{file}: missing required tag {_tag_name(keyword)}")
    return value


def _floats(ds: pydicom.Dataset, keyword: str, file: str, n: int) -> np.ndarray:
    raw = _tag(ds, keyword, file)
    try:
        values = np.array([float(x) for x in raw], dtype=float)  # type: ignore[union-attr]
    except (TypeError, ValueError) as err:
        raise DicomError(f"{file}: tag {keyword} is not {n} numbers: {raw!r}") from err
    if values.shape != (n,):
        raise DicomError(f"{file}: tag {keyword} should hold {n} numbers, found {values.size}")
    return values


def _optional_float(ds: pydicom.Dataset, keyword: str, file: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise DicomError(f"{file}: tag {keyword} is not a number: {value!r}") from err


def _pydicom_decoder(ds: pydicom.Dataset, file: str, rows: int, cols: int) -> Callable[[], np.ndarray]:
    def decode() -> np.ndarray:
        if "PixelData" not in ds:
            raise DicomError(f"{file}: missing required tag PixelData (7FE0,0010)")
        ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", EXPLICIT_VR_LE))
        try:
            if ts in _UNCOMPRESSED and int(ds.get("SamplesPerPixel", 1)) == 1:
                bits = int(_tag(ds, "BitsAllocated", file))  # type: ignore[call-overload]
                signed = int(ds.get("PixelRepresentation", 0)) == 1
                px = _decode_raw(file, ds.PixelData, rows, cols, bits, signed, ts == _BIG_ENDIAN)
            else:
                px = np.asarray(ds.pixel_array)
        except DicomError:
            raise
        except _READ_ERRORS + (RuntimeError, NotImplementedError) as err:
            raise DicomError(f"{file}: cannot decode PixelData (7FE0,0010): {err}") from err
        if px.shape != (rows, cols):
            raise DicomError(f"{file}: PixelData is {px.shape}, expected {(rows, cols)} from Rows/Columns")
        return px

    return decode


def _image_type(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(x) for x in value)  # type: ignore[union-attr]


def _with_pydicom(pf: PackageFile) -> Slice:
    try:
        ds = pydicom.dcmread(io.BytesIO(pf.data), force=True)
        sop = str(_tag(ds, "SOPInstanceUID", pf.name))
    except DicomError as err:  # garbage parses (force=True) into a dataset without the basic tags
        raise DicomError(f"{pf.name}: corrupt or truncated DICOM ({str(err).split(': ', 1)[-1]})") from err
    except _READ_ERRORS as err:
        raise DicomError(f"{pf.name}: corrupt or truncated DICOM ({type(err).__name__}: {err})") from err
    try:
        rows, cols = int(_tag(ds, "Rows", pf.name)), int(_tag(ds, "Columns", pf.name))  # type: ignore[call-overload]
        number = int(ds.get("SeriesNumber", 0) or 0)
    except _READ_ERRORS as err:
        raise DicomError(f"{pf.name}: corrupt Rows/Columns/SeriesNumber ({err})") from err
    ps = _floats(ds, "PixelSpacing", pf.name, 2)
    if (ps <= 0).any():
        raise DicomError(f"{pf.name}: PixelSpacing must be positive, found {ps.tolist()}")
    return Slice(
        pf.name, sop, str(_tag(ds, "SeriesInstanceUID", pf.name)), str(ds.get("SeriesDescription", "")),
        _image_type(ds.get("ImageType")), number, str(ds.get("SeriesTime", "")),
        _floats(ds, "ImageOrientationPatient", pf.name, 6), _floats(ds, "ImagePositionPatient", pf.name, 3),
        (float(ps[0]), float(ps[1])), rows, cols, _optional_float(ds, "SliceThickness", pf.name),
        _optional_float(ds, "RescaleSlope", pf.name), _optional_float(ds, "RescaleIntercept", pf.name),
        _pydicom_decoder(ds, pf.name, rows, cols), sop_class=str(ds.get("SOPClassUID", "")),
        modality=str(ds.get("Modality", "")))


def parse_slice(pf: PackageFile, *, fast: bool = True) -> Slice:
    """Read one DICOM file's header (fast reader first unless ``fast=False``); DicomError names the file."""
    slc = _fast(pf) if fast else None
    if slc is None:
        slc = _with_pydicom(pf)
    slc.source = pf
    return slc
