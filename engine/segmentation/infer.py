"""UNETR inference: fused Dixon volumes in, a 27-structure label map on the same grid out.

Steps (the study's preprocessing, docs/architecture.md "Segmentation"): each input contrast is windowed
``[80, 450] → [0, 1]`` and resampled (trilinear) to the checkpoint's spacing; the grid is cropped to
the body so no window is spent on air; a sliding window with Gaussian blending runs the network;
argmax gives labels, which are resampled (nearest) back onto the fused grid and written as an NRRD
whose header names every segment the way 3D Slicer reads ``.seg.nrrd`` files.
"""

from __future__ import annotations

import colorsys
import functools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from engine.errors import EngineError
from engine.imaging.segments import segment_names as segment_names  # re-exported: its callers import it here
from engine.imaging.volume import Volume, read_nrrd, write_nrrd
from engine.quality.confidence import labels_and_low_confidence
from engine.segmentation.checkpoint import (
    DEFAULT_OVERLAP,
    VALIDATION_KEY,
    Sidecar,
    load_checkpoint,
    validation_note,
)
from engine.segmentation.kernels import nearest_index, zoom_linear
from engine.segmentation.postprocess import PostProcess, calibrated_argmax, keep_largest_components
from engine.segmentation.sliding import window_logits
from store.files import atomic_path

BODY_THRESHOLD = 0.05  # windowed intensity above which a voxel counts as body (air/noise stays below)
BODY_MIN_VOXELS = 20  # a slab needs this many body voxels to count, so isolated noise does not widen the crop
BODY_MARGIN_MM = 10.0  # context kept around the body box (network sees edges as in training)
# Label-map header keys (written to the NRRD with the labels, so the file carries its own provenance).
STRAY_KEY = "msmv_stray_removed_cm3"
CONFIDENCE_KEY = "msmv_low_confidence_share"  # engine.quality.confidence, over the body voxels


# ---------------------------------------------------------------- preprocessing


def window(data: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to ``[low, high]`` and scale to ``[0, 1]`` (float32)."""
    out = (np.asarray(data, dtype=np.float32) - np.float32(low)) / np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def resampled_shape(shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]) -> tuple[int, ...]:
    """Voxels per axis of a grid with the same first voxel centre covering the same extent."""
    return tuple(
        int(np.floor((n - 1) * s / t + 1e-6)) + 1 for n, s, t in zip(shape, spacing, new_spacing, strict=True)
    )


def resample(
    volume: Volume, new_spacing: Sequence[float], *, order: int, shape: Sequence[int] | None = None
) -> Volume:
    """Resample onto a grid with the same origin and direction and spacing ``new_spacing``.

    ``order`` 1 is trilinear (images, float32), 0 nearest (labels, the input's dtype). ``shape`` defaults
    to the grid covering the same extent; pass the original shape to map a resampled volume back exactly.
    Both equal ``scipy.ndimage.affine_transform(data, scale, order=order, mode="nearest", prefilter=False)``
    voxel for voxel (tests/engine/segmentation/test_kernels.py): the zoom is separable, so nearest is a
    lookup of one index array per axis and trilinear a numba kernel (:mod:`engine.segmentation.kernels`).
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (trilinear), got {order!r}")
    new_spacing = tuple(float(s) for s in new_spacing)
    out_shape = tuple(shape) if shape is not None else resampled_shape(volume.shape, volume.spacing, new_spacing)
    scale = np.asarray(new_spacing) / np.asarray(volume.spacing)
    if np.allclose(scale, 1.0) and out_shape == volume.shape:
        return volume
    if order == 0:
        out = np.asarray(volume.data)
        for axis, (m, z, n) in enumerate(zip(out_shape, scale, volume.shape, strict=True)):
            out = out.take(nearest_index(m, float(z), n), axis=axis)
    else:
        out = zoom_linear(volume.data, tuple(float(z) for z in scale), out_shape)
    return Volume(out, new_spacing, volume.origin, volume.direction, dict(volume.meta))


def prepare_channels(channels: Sequence[Volume], sidecar: Sidecar) -> tuple[np.ndarray, Volume]:
    """Window and resample each contrast; returns ``(C, X, Y, Z)`` float32 and the model-grid reference."""
    if len(channels) != sidecar.in_channels:
        raise ValueError(f"checkpoint expects {sidecar.in_channels} contrasts {sidecar.contrasts}, got {len(channels)}")
    ref = channels[0]
    for name, v in zip(sidecar.contrasts, channels, strict=True):
        if v.shape != ref.shape or not np.allclose(v.spacing, ref.spacing):
            raise ValueError(f"contrast {name!r} grid {v.shape}@{v.spacing} differs from {ref.shape}@{ref.spacing}")
    low, high = sidecar.window
    spacing = tuple(float(s) for s in sidecar.spacing)
    shape = resampled_shape(ref.shape, ref.spacing, spacing)
    scale = np.asarray(spacing) / np.asarray(ref.spacing)
    if np.allclose(scale, 1.0) and shape == ref.shape:  # resample()'s no-op: already on the model's grid
        image = np.stack([window(v.data, low, high) for v in channels])
        return image, ref.with_data(image[0])
    # each contrast windowed and resampled (as resample(order=1)) straight into its channel of the stack
    image = np.empty((len(channels), *shape), dtype=np.float32)
    for c, v in enumerate(channels):
        zoom_linear(window(v.data, low, high), tuple(float(z) for z in scale), shape, out=image[c])
    return image, Volume(image[0], spacing, ref.origin, ref.direction, dict(ref.meta))


def body_box(image: np.ndarray, spacing: Sequence[float], *, margin_mm: float = BODY_MARGIN_MM) -> tuple[slice, ...]:
    """Bounding box (with margin) of voxels brighter than :data:`BODY_THRESHOLD` in ``(C, X, Y, Z)``."""
    mask = image.max(axis=0) > BODY_THRESHOLD
    box = []
    for axis, s in enumerate(spacing):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.sum(axis=other) >= BODY_MIN_VOXELS)
        n = mask.shape[axis]
        if idx.size == 0:
            return tuple(slice(0, m) for m in mask.shape)
        pad = int(np.ceil(margin_mm / s))
        box.append(slice(max(int(idx[0]) - pad, 0), min(int(idx[-1]) + 1 + pad, n)))
    return tuple(box)


# ---------------------------------------------------------------- inference


Predictor = Callable[[torch.Tensor], torch.Tensor]
RUNTIMES: tuple[str, ...] = ("torch", "onnx")
DEFAULT_RUNTIME = "onnx"  # benchmarks/segment.py: ~3x faster than PyTorch eager on CPU, labels equal up to ties


@dataclass
class SegmentTiming:
    """Where the seconds went (reported by the CLI and the benchmark)."""

    preprocess_s: float = 0.0
    network_s: float = 0.0
    postprocess_s: float = 0.0
    model_grid: tuple[int, ...] = ()
    cropped_grid: tuple[int, ...] = ()
    windows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


Overlap = float | tuple[float, ...]  # MONAI's sliding-window overlap: one fraction, or one per axis


def count_windows(shape: Sequence[int], roi: Sequence[int], overlap: Overlap) -> int:
    """Number of sliding-window positions MONAI visits for ``shape`` (after padding to ``roi``)."""
    per_axis = overlap if isinstance(overlap, tuple) else (overlap,) * len(roi)
    n = 1
    for size, r, o in zip(shape, roi, per_axis, strict=True):
        size = max(size, r)
        step = max(int(r * (1 - o)), 1)
        n *= int(np.ceil((size - r) / step)) + 1
    return n


def fewest_windows_overlap(shape: Sequence[int], roi: Sequence[int], min_overlap: float) -> tuple[float, ...]:
    """Per-axis overlap for MONAI's sliding window: the fewest windows covering each axis, overlapping >= ``min_overlap``.

    On an axis of ``size`` voxels with windows of ``r``, the step may be at most ``floor(r * (1 - min_overlap))``,
    so ``n = 1 + ceil((size - r) / that)`` windows are needed (``ceil(size / r)`` when ``min_overlap`` is 0);
    their step is then ``ceil((size - r) / (n - 1))``, spreading the overlap evenly instead of MONAI's
    fixed step (which, at 0.25, visits 54 windows where 30 cover a pelvis-to-knee crop). The returned
    fraction makes MONAI's ``int(r * (1 - overlap))`` equal that step; an axis no longer than ``r``
    (MONAI pads it to ``r``) gets one window and 0.
    """
    if not 0 <= min_overlap < 1:
        raise ValueError(f"min_overlap must be in [0, 1), got {min_overlap}")
    out = []
    for size, r in zip(shape, roi, strict=True):
        if size <= r:
            out.append(0.0)
            continue
        longest = max(int(np.floor(r * (1 - min_overlap) + 1e-9)), 1)  # longest step keeping the overlap
        n = 1 + -(-(size - r) // longest)
        step = -(-(size - r) // (n - 1))
        out.append(max((r - step - 0.5) / r, 0.0))  # int(r * (1 - o)) == step; 0 when the step is r
    return tuple(out)


def window_overlap(
    shape: Sequence[int], roi: Sequence[int], sidecar: Sidecar, *,
    overlap: float | None = None, min_overlap: float | None = None,
) -> Overlap:
    """The overlap the sliding window uses: ``overlap`` (a fixed grid) or ``min_overlap`` (the fewest windows) if
    given, else the sidecar's ``min_overlap`` (the study model's placement), else :data:`DEFAULT_OVERLAP`."""
    if overlap is not None and min_overlap is not None:
        raise ValueError("give overlap (a fixed grid) or min_overlap (the fewest windows), not both")
    if overlap is not None:
        return float(overlap)
    chosen = min_overlap if min_overlap is not None else sidecar.min_overlap
    return DEFAULT_OVERLAP if chosen is None else fewest_windows_overlap(shape, roi, chosen)


def torch_predictor(model: torch.nn.Module) -> Predictor:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def infer_logits(
    image: np.ndarray,
    roi: Sequence[int],
    predictor: Predictor,
    *,
    overlap: Overlap = DEFAULT_OVERLAP,
    sw_batch_size: int = 1,
    progress: bool = False,
) -> torch.Tensor:
    """Sliding-window logits ``(K, X, Y, Z)`` for a ``(C, X, Y, Z)`` image, Gaussian-blended (``overlap`` per axis or one).

    MONAI's ``sliding_window_inference(mode="gaussian")``, the same logits, with less work around the
    network calls (:func:`engine.segmentation.sliding.window_logits`).
    """
    return window_logits(image, roi, predictor, overlap=overlap, sw_batch_size=sw_batch_size, progress=progress)


@dataclass
class ModelLogits:
    """The network's sliding-window logits on the body box of the model grid, before any decision."""

    logits: torch.Tensor  # (classes, *box shape)
    box: tuple[slice, ...]  # where the logits lie on the model grid
    grid: Volume  # the model grid (geometry; its data is the first prepared contrast)


def channel_logits(
    channels: Sequence[Volume],
    predictor: Predictor,
    sidecar: Sidecar,
    *,
    overlap: float | None = None,
    min_overlap: float | None = None,
    crop: bool = True,
    sw_batch_size: int = 1,
    progress: bool = False,
    timing: SegmentTiming | None = None,
) -> ModelLogits:
    """Preprocess contrasts on one grid (in ``sidecar.contrasts`` order) and run the network over the body.

    Window placement: :func:`window_overlap` (``overlap``, ``min_overlap`` or the sidecar's choice).
    """
    timing = timing if timing is not None else SegmentTiming()
    t0 = time.perf_counter()
    image, grid = prepare_channels(channels, sidecar)
    box = body_box(image, grid.spacing) if crop else tuple(slice(0, n) for n in grid.shape)
    cropped = image[(slice(None), *box)]
    timing.preprocess_s = time.perf_counter() - t0
    timing.model_grid, timing.cropped_grid = grid.shape, cropped.shape[1:]
    roi = sidecar.model.img_size
    used = window_overlap(cropped.shape[1:], roi, sidecar, overlap=overlap, min_overlap=min_overlap)
    timing.windows = count_windows(cropped.shape[1:], roi, used)
    timing.extra["overlap"] = used
    t0 = time.perf_counter()
    logits = infer_logits(cropped, roi, predictor, overlap=used,
                          sw_batch_size=sw_batch_size, progress=progress)
    timing.network_s = time.perf_counter() - t0
    return ModelLogits(logits, box, grid)


def labels_from_logits(
    result: ModelLogits, ref: Volume, post: PostProcess, *, decided: np.ndarray | None = None
) -> tuple[Volume, dict[int, float]]:
    """Calibrated argmax, nearest resampling back onto ``ref``'s grid, then stray removal if ``post`` asks.

    ``decided``: the calibrated argmax on the box when the caller has it already (from
    :func:`engine.quality.confidence.labels_and_low_confidence`, the same pass as the confidence).
    Returns the label map (uint8, ``ref``'s geometry) and the stray volume removed per structure (cm³;
    empty when stray removal is off).
    """
    labels = np.zeros(result.grid.shape, dtype=np.uint8)
    labels[result.box] = calibrated_argmax(result.logits, post.logit_offsets) if decided is None else decided
    back = resample(result.grid.with_data(labels), ref.spacing, order=0, shape=ref.shape)
    out = Volume(back.data.astype(np.uint8), ref.spacing, ref.origin, ref.direction)
    if not post.largest_component:
        return out, {}
    return keep_largest_components(out, structures=post.largest_component)


def segment_channels(
    channels: Sequence[Volume],
    model: torch.nn.Module | None,
    sidecar: Sidecar,
    *,
    overlap: float | None = None,
    min_overlap: float | None = None,
    crop: bool = True,
    predictor: Predictor | None = None,
    sw_batch_size: int = 1,
    progress: bool = False,
    timing: SegmentTiming | None = None,
) -> Volume:
    """Segment contrasts on one grid (in ``sidecar.contrasts`` order); labels on that same grid (uint8).

    The sidecar's calibration decides the post-processing (:class:`PostProcess`). The label map's
    metadata records what the checkpoint was validated on (:data:`VALIDATION_KEY`) and, where stray
    components were removed, the removed cm³ per structure as JSON (:data:`STRAY_KEY`).
    """
    if predictor is None:
        if model is None:
            raise TypeError("segment_channels needs a model or a predictor")
        predictor = torch_predictor(model)
    timing = timing if timing is not None else SegmentTiming()
    result = channel_logits(channels, predictor, sidecar, overlap=overlap, min_overlap=min_overlap, crop=crop,
                            sw_batch_size=sw_batch_size,
                            progress=progress, timing=timing)
    t0 = time.perf_counter()
    post = postprocess(sidecar)
    # body voxels: the first contrast (windowed) above the threshold the body crop uses
    body = np.asarray(result.grid.data)[result.box] > BODY_THRESHOLD
    decided, share = labels_and_low_confidence(result.logits, body, offsets=post.logit_offsets)  # one pass
    labels, removed = labels_from_logits(result, channels[0], post, decided=decided)
    timing.postprocess_s = time.perf_counter() - t0
    meta = {VALIDATION_KEY: validation_note(sidecar.validated_on), CONFIDENCE_KEY: f"{share:.6f}"}
    if removed:
        meta[STRAY_KEY] = json.dumps({str(k): round(v, 3) for k, v in sorted(removed.items())})
    return labels.with_data(labels.data, **meta)


def postprocess(sidecar: Sidecar) -> PostProcess:
    """The post-processing a checkpoint's sidecar asks for (plain argmax when it has no calibration)."""
    return PostProcess.from_calibration(sidecar.calibration, sidecar.out_channels)


def low_confidence(meta: dict[str, str]) -> float | None:
    """The share of body voxels segmented with low confidence, from a label map's metadata (None if not recorded)."""
    raw = meta.get(CONFIDENCE_KEY)
    try:
        return None if raw in (None, "", "nan") else float(raw)
    except ValueError as err:
        raise EngineError(f"label map header {CONFIDENCE_KEY} must be a number, found {raw!r}") from err


def stray_removed(meta: dict[str, str]) -> dict[int, float]:
    """``{label: cm³}`` of stray components removed, from a label map's metadata (empty if none recorded)."""
    raw = meta.get(STRAY_KEY)
    if not raw:
        return {}
    try:
        return {int(k): float(v) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError) as err:
        raise EngineError(f"label map header {STRAY_KEY} must be a JSON object of label -> cm³, found {raw!r}") from err


def fused_channels(fused_dir: str | os.PathLike[str], contrasts: Sequence[str]) -> list[Volume]:
    """Read ``<contrast>.nrrd`` for each contrast from a fused folder (``msmv fuse`` output)."""
    folder = Path(fused_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"fused folder {folder} does not exist")
    out = []
    for name in contrasts:
        path = folder / f"{name}.nrrd"
        if not path.is_file():
            found = sorted(p.name for p in folder.glob("*.nrrd"))
            raise EngineError(f"{folder}: the checkpoint needs {name}.nrrd; found {found or 'no NRRD files'}")
        out.append(read_nrrd(path))
    return out


def load_segmenter(
    checkpoint: str | os.PathLike[str],
    *,
    runtime: str = DEFAULT_RUNTIME,
    onnx_cache: str | os.PathLike[str] | None = None,
    threads: int = 2,
) -> tuple[torch.nn.Module, Predictor, Sidecar]:
    """Load ``checkpoint`` and the predictor that runs it on ``runtime`` (:data:`RUNTIMES`).

    ``runtime="onnx"`` (the default: several times faster on CPU, the same labels up to float ties) runs
    the network on ONNX Runtime, exporting it once to ``onnx_cache/<weights sha256>.onnx`` (default: a
    temporary folder). A worker process keeps the last loaded segmenter, so a second subject with the
    same checkpoint, runtime and threads loads nothing.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    path = Path(checkpoint)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1  # load_checkpoint names what is missing
    cache = str(Path(onnx_cache).resolve()) if onnx_cache is not None else None
    return _load_segmenter(str(path.resolve()), stamp, runtime, cache, int(threads))


@functools.lru_cache(maxsize=1)
def _load_segmenter(
    checkpoint: str, _stamp: int, runtime: str, onnx_cache: str | None, threads: int
) -> tuple[torch.nn.Module, Predictor, Sidecar]:
    model, sidecar = load_checkpoint(checkpoint)
    if runtime == "torch":
        return model, torch_predictor(model), sidecar
    import tempfile

    folder = Path(onnx_cache) if onnx_cache is not None else Path(tempfile.gettempdir()) / "msmv_onnx"
    path = folder / f"{sidecar.weights_sha256 or 'unhashed'}.onnx"
    if not path.is_file() or not sidecar.weights_sha256:
        export_onnx(model, sidecar, path)
    return model, onnx_predictor(path, threads=threads), sidecar


def contrast_channels(volumes: Mapping[str, Volume], contrasts: Sequence[str]) -> list[Volume]:
    """The contrasts a checkpoint asks for, in its order, from fused volumes held in memory."""
    missing = [c for c in contrasts if c not in volumes]
    if missing:
        raise EngineError(f"the checkpoint needs {', '.join(missing)}; the fused volumes hold {sorted(volumes)}")
    return [volumes[c] for c in contrasts]


def segment_fused(
    fused: str | os.PathLike[str] | Mapping[str, Volume],
    checkpoint: str | os.PathLike[str],
    *,
    overlap: float | None = None,
    min_overlap: float | None = None,
    crop: bool = True,
    progress: bool = False,
    timing: SegmentTiming | None = None,
    runtime: str = DEFAULT_RUNTIME,
    onnx_cache: str | os.PathLike[str] | None = None,
    threads: int = 2,
    sw_batch_size: int = 1,
) -> tuple[Volume, Sidecar]:
    """Load ``checkpoint`` (:func:`load_segmenter`) and segment the fused contrasts it asks for.

    ``fused``: a fused folder (``msmv fuse`` output, read with :func:`fused_channels`) or the fused
    volumes already in memory (``{contrast: Volume}``, e.g. the engine's fuse stage), so nothing is read
    twice.

    Window placement (:func:`window_overlap`): ``overlap`` is MONAI's fixed grid at that fraction,
    ``min_overlap`` the fewest windows per axis overlapping by at least it (:func:`fewest_windows_overlap`);
    with neither, the checkpoint's sidecar decides (``min_overlap``: the study model's
    :data:`~engine.segmentation.checkpoint.STUDY_MIN_OVERLAP`), else :data:`DEFAULT_OVERLAP`.
    """
    model, predictor, sidecar = load_segmenter(checkpoint, runtime=runtime, onnx_cache=onnx_cache, threads=threads)
    if isinstance(fused, Mapping):
        channels = contrast_channels(fused, sidecar.contrasts)
    else:
        channels = fused_channels(fused, sidecar.contrasts)
    labels = segment_channels(channels, model, sidecar, overlap=overlap, min_overlap=min_overlap, crop=crop,
                              progress=progress,
                              timing=timing, predictor=predictor, sw_batch_size=sw_batch_size)
    return labels, sidecar


# ---------------------------------------------------------------- Slicer segmentation header


def segment_color(label: int, n: int = 27) -> tuple[float, float, float]:
    """A distinct, deterministic colour per label (golden-ratio hue steps)."""
    hue = (label * 0.618033988749895) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.65, 0.9 if label % 2 else 0.75)


def slicer_header(labels: np.ndarray, table: dict[int, str]) -> dict[str, str]:
    """3D Slicer segmentation keys (``Segment{i}_*``) naming each label of ``table``."""
    header = {
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    objects = ndimage.find_objects(np.asarray(labels, dtype=np.int32), max_label=max(table))
    for i, (label, name) in enumerate(sorted(table.items())):
        sl = objects[label - 1] if label - 1 < len(objects) else None
        extent = "0 -1 0 -1 0 -1" if sl is None else " ".join(f"{s.start} {s.stop - 1}" for s in sl)
        r, g, b = segment_color(label)
        header.update({
            f"Segment{i}_ID": f"Segment_{label}",
            f"Segment{i}_Name": name,
            f"Segment{i}_LabelValue": str(label),
            f"Segment{i}_Layer": "0",
            f"Segment{i}_Color": f"{r:.4f} {g:.4f} {b:.4f}",
            f"Segment{i}_Extent": extent,
            f"Segment{i}_NameAutoGenerated": "0",
            f"Segment{i}_ColorAutoGenerated": "0",
            f"Segment{i}_Tags": "",
        })
    return header


def write_labels(path: str | os.PathLike[str], labels: Volume, table: dict[int, str]) -> Path:
    """Write a label map as an NRRD 3D Slicer opens as a named segmentation."""
    data = np.asarray(labels.data, dtype=np.uint8)
    return write_nrrd(path, labels.with_data(data), extra_header=slicer_header(data, table))


# ---------------------------------------------------------------- ONNX Runtime


def export_onnx(model: torch.nn.Module, sidecar: Sidecar, path: str | os.PathLike[str]) -> Path:
    """Export the network for one window (batch dimension dynamic) with the TorchScript exporter."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(1, sidecar.in_channels, *sidecar.model.img_size)
    # written aside and renamed: two workers exporting the same weights never read a half-written file
    with atomic_path(path, suffix=".tmp.onnx") as tmp:
        try:
            torch.onnx.export(model.eval(), (x,), str(tmp), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                              dynamo=False)
        except Exception as err:  # the exporter raises many types for unsupported operators
            raise EngineError(f"cannot export the model to ONNX: {err}") from err
    return path


def onnx_predictor(path: str | os.PathLike[str], *, threads: int = 2) -> Predictor:
    """A sliding-window predictor running an exported model on ONNX Runtime's CPU provider."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise EngineError("ONNX Runtime inference needs the onnxruntime package") from err
    opts = ort.SessionOptions()
    # stated although they are ORT's defaults (benchmarks/study_window.py measured them): every graph
    # optimisation, operators one after another on ``threads`` cores, memory pattern and arena reused
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = True
    opts.enable_cpu_mem_arena = True
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # no busy-waiting between windows: the other stages (and the other worker) get the cores
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(["logits"], {"image": np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)

    return run
