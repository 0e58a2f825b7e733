"""Other tools' segmentations (MuscleMap, TotalSegmentator, any label map) as MSMV metric sources."""

from engine.interop.convert import Converted, convert_masks, convert_multilabel
from engine.interop.importer import FORMATS, SubjectImport, find_inputs, import_labels
from engine.interop.mapping import Mapping, MappingError, Target, default_mapping, load_mapping
from engine.interop.measure import Measured, measure_converted, resample_onto
from engine.interop.read import LabelFileError, LabelImage, eid_from_name, read_labels

__all__ = [
    "FORMATS", "Converted", "LabelFileError", "LabelImage", "Mapping", "MappingError", "Measured",
    "SubjectImport", "Target", "convert_masks", "convert_multilabel", "default_mapping", "eid_from_name",
    "find_inputs", "import_labels", "load_mapping", "measure_converted", "read_labels", "resample_onto",
]
