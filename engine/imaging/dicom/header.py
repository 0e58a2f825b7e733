"""Fast reader for the few header tags ingest needs, from uncompressed little-endian Part-10 files.

pydicom parses and converts every element (about 1 ms a file, most of it value conversion); a UKB
subject holds ~1,300 files, so the header walk is the measured hot path of ingest. This reader walks
the element stream once, keeps the raw bytes of the tags in :data:`WANTED`, skips sequences, and stops
at PixelData. Whatever it does not handle (other transfer syntaxes, encapsulated pixel data, anything
malformed) yields None: the caller then falls back to pydicom, which also words the errors for
corrupt files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
_PREAMBLE = 128
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_TRANSFER_SYNTAX = 0x00020010
PIXEL_DATA = 0x7FE00010

#: tag → keyword of every element ingest reads
WANTED: dict[int, str] = {
    0x00080008: "ImageType",
    0x00080016: "SOPClassUID",
    0x00080018: "SOPInstanceUID",
    0x00080031: "SeriesTime",
    0x00080060: "Modality",
    0x0008103E: "SeriesDescription",
    0x00180050: "SliceThickness",
    0x0020000E: "SeriesInstanceUID",
    0x00200011: "SeriesNumber",
    0x00200032: "ImagePositionPatient",
    0x00200037: "ImageOrientationPatient",
    0x00280002: "SamplesPerPixel",
    0x00280010: "Rows",
    0x00280011: "Columns",
    0x00280030: "PixelSpacing",
    0x00280100: "BitsAllocated",
    0x00280103: "PixelRepresentation",
    0x00281052: "RescaleIntercept",
    0x00281053: "RescaleSlope",
}
_UNPACK_TAG = struct.Struct("<HH").unpack_from
_UNPACK_U16 = struct.Struct("<H").unpack_from
_UNPACK_U32 = struct.Struct("<I").unpack_from
_UNPACK_EXPLICIT = struct.Struct("<HH2sH").unpack_from  # group, element, VR, short length
_UNPACK_IMPLICIT = struct.Struct("<HHI").unpack_from  # group, element, length


@dataclass(frozen=True)
class RawHeader:
    """Raw values of the wanted tags and where PixelData lies (the file may hold fewer bytes than declared)."""

    values: dict[str, bytes]
    pixel_offset: int | None  # None: the buffer ended before PixelData
    pixel_length: int  # as declared in the file


def _element(buf: bytes, pos: int, explicit: bool) -> tuple[int, int, int]:
    """(tag, value length, value position) of the element at ``pos``."""
    group, elem = _UNPACK_TAG(buf, pos)
    tag = (group << 16) | elem
    if group == 0xFFFE or not explicit:  # item tags carry no VR, even in explicit-VR syntax
        return tag, _UNPACK_U32(buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4:pos + 6]
    if vr in _LONG_VRS:
        return tag, _UNPACK_U32(buf, pos + 8)[0], pos + 12
    return tag, _UNPACK_U16(buf, pos + 6)[0], pos + 8


def _skip_sequence(buf: bytes, pos: int, explicit: bool) -> int:
    """Position after an undefined-length sequence whose first item starts at ``pos``."""
    while True:
        tag, length, pos = _element(buf, pos, explicit)
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise ValueError(f"expected a sequence item, found tag {tag:08X}")
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # an undefined-length item: nested elements up to the item delimiter
            tag, length, pos = _element(buf, pos, explicit)
            if tag == _ITEM_END:
                break
            pos = _skip_sequence(buf, pos, explicit) if length == _UNDEFINED else pos + length


def read_header(data: bytes) -> RawHeader | None:
    """Wanted tags of a Part-10 file in (Ex|Im)plicit VR Little Endian, or None to fall back to pydicom.

    ``data`` may be the first bytes of the file only: a header that ends inside it is read all the same.
    """
    try:
        return _read_header(data)
    except (struct.error, ValueError, IndexError):
        return None


def _read_header(data: bytes) -> RawHeader | None:
    if data[_PREAMBLE:_PREAMBLE + 4] != b"DICM":
        return None
    pos, size = _PREAMBLE + 4, len(data)
    syntax = None
    while pos + 8 <= size and _UNPACK_U16(data, pos)[0] == 0x0002:  # file meta: always explicit VR LE
        tag, length, vpos = _element(data, pos, True)
        if length == _UNDEFINED:
            return None
        if tag == _TRANSFER_SYNTAX:
            syntax = data[vpos:vpos + length].rstrip(b"\0 ").decode("ascii")
        pos = vpos + length
    if syntax not in (EXPLICIT_VR_LE, IMPLICIT_VR_LE):
        return None
    explicit = syntax == EXPLICIT_VR_LE
    values: dict[str, bytes] = {}
    last = -1
    while pos + 8 <= size:  # _element inlined: this loop runs ~40 times per file, ~1,300 files a subject
        if explicit:
            group, elem, vr, length = _UNPACK_EXPLICIT(data, pos)
            if group == 0xFFFE:  # item tags carry no VR
                length, vpos = _UNPACK_U32(data, pos + 4)[0], pos + 8
            elif vr in _LONG_VRS:
                length, vpos = _UNPACK_U32(data, pos + 8)[0], pos + 12
            else:
                vpos = pos + 8
        else:
            group, elem, length = _UNPACK_IMPLICIT(data, pos)
            vpos = pos + 8
        tag = (group << 16) | elem
        if tag <= last:  # tags must ascend: anything else means we misread the stream
            return None
        last = tag
        if tag == PIXEL_DATA:
            if length == _UNDEFINED:  # encapsulated (compressed) pixels: pydicom decodes those
                return None
            return RawHeader(values, vpos, length)
        if length == _UNDEFINED:
            pos = _skip_sequence(data, vpos, explicit)
            continue
        if vpos + length > size:  # a value runs past the buffer: a truncated file or a partial head
            return None
        keyword = WANTED.get(tag)
        if keyword is not None:
            values[keyword] = data[vpos:vpos + length]
        pos = vpos + length
    return RawHeader(values, None, 0)
