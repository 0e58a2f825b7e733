"""Exceptions raised by the engine package (one hierarchy; messages say what was expected and found)."""


class EngineError(Exception):
    """Base class for engine errors."""


class DicomError(EngineError):
    """A DICOM package or file could not be read (the message names the file and tag)."""


class PackageError(DicomError):
    """An upload/zip is unusable: empty, not a zip, unsafe paths, too large, missing stations/contrasts."""


class PackageRefused(PackageError):
    """A package over the bounds on work (size, file count, compression ratio) or with unsafe entries.

    The verdict depends on the package's bytes alone, so retrying it cannot succeed: the engine marks
    such a job failed at once instead of trying it again.
    """


class FusionError(EngineError):
    """Stations cannot be fused onto one grid."""


class CheckpointError(EngineError):
    """A model checkpoint does not match its sidecar or cannot be loaded safely."""


class StatsError(EngineError, ValueError):
    """A statistical model cannot be fitted meaningfully (separation, non-convergence, too few rows)."""


class JobError(EngineError):
    """A queued job failed at a stage."""


class MeshError(EngineError):
    """Surface meshes cannot be built within their face budget, or a mesh file cannot be read."""
