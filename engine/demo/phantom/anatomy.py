"""Per-subject phantom anatomy: sampling, station placement and volume calibration.

A subject is the reference template (:mod:`engine.demo.phantom.template`) mirrored to both sides, scaled
to a height and to its muscle volumes, perturbed (shape, position, left/right asymmetry), then
calibrated so each structure's volume inside the fused field of view (UKB stations 3-6) matches its
target. Patient space is LPS: +x is the subject's left, +y posterior, +z superior; z = 0 at the
femoral-head centres.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from engine.demo.cohort.params import BONE_SCALE_FEMALE, SIDE_VOLUME_CM3
from engine.demo.phantom import template as tpl
from engine.demo.phantom.kernel import Primitives, classify, extents, slice_params
from engine.imaging.volume import Volume
from store.structures import BY_KEY, SIDES, STRUCTURES
from store.vocabulary import DEFAULT_STATIONS, MALE

# --- UK Biobank neck-to-knee Dixon geometry (docs/architecture.md "The Dixon package") ---------
UKB_PIXEL_MM = 2.232
# (rows, columns, slices) per station 1..6. Columns run along x (left-right): the 500 mm side of
# UKB's 500 x 375 mm rectangular field of view (224 x 2.232 mm); rows along y (anterior-posterior).
UKB_MATRICES: tuple[tuple[int, int, int], ...] = (
    (168, 224, 64), (174, 224, 44), (174, 224, 44), (174, 224, 44), (162, 224, 72), (156, 224, 64),
)
# Slice spacing: 3.0 mm for the trunk stations 1-4 and 4.5 mm for the leg stations 5-6 — the
# published UKB body protocol's slab thicknesses; the station matrices above then span ~1.2 m.
UKB_SLICE_MM: tuple[float, ...] = (3.0, 3.0, 3.0, 3.0, 4.5, 4.5)
TRUNK_STATIONS = (1, 2, 3, 4)
FUSED_STATIONS: tuple[int, ...] = DEFAULT_STATIONS  # phantoms are fused as the study's packages are
HIP_STATION_TOP_MM = 35.0  # station 4's top slice sits just above the femoral heads (reference man)
STATION_OVERLAP_MM = (6.0, 14.0)  # range of the overlap between consecutive stations
STATION_OFFSET_SD_MM = 3.0  # in-plane offset between stations (table/FOV centring)

# (grid spacing mm, max rounds, stop when every structure is within this relative error)
CALIBRATION_SCHEDULE = ((4.0, 4, 0.05), (2.5, 3, 0.025))
CALIBRATION_GAIN = 1.3  # exponent on the measured/target ratio per round (>1: neighbours push back)

# Subject variation (SDs) — chosen to look like a population, not measured.
HEIGHT_CM = {1: (176.0, 7.0), 0: (162.7, 6.5)}  # study Table 1 means
TMV_CM3 = {1: (11000.0, 1300.0), 0: (7700.0, 900.0)}  # study Fig. 4b medians across age
FAT_MM = {1: (14.0, 4.0), 0: (22.0, 6.0)}  # subcutaneous fat thickness over the thigh
STRUCTURE_LOG_SD = 0.08
ASYMMETRY_LOG_SD = 0.03
POSITION_SD_MM = 2.5
SIZE_LOG_SD = 0.06
ANGLE_SD_DEG = 5.0
YAW_SD_DEG = 2.0  # rotation of the whole body about the superior axis
PELVIS_WIDTH = {1: (1.0, 0.03), 0: (1.06, 0.03)}  # lateral stretch at and above the hips (wider female pelvis)
PELVIS_BLEND_MM = 100.0  # the stretch fades out over this distance below the femoral heads

_SIDE_KEYS = [k for k in dict.fromkeys(p.key for p in tpl.SIDE_PARTS) if k not in BY_KEY]
_MIDLINE_KEYS = [p.key for p in tpl.MIDLINE_PARTS]


def ident_of(key: str, side: int) -> int:
    """Identity code of a structure (or unlabelled tissue) on side 0 = left, 1 = right, -1 = midline."""
    if key in BY_KEY:
        return BY_KEY[key].label + 27 * side
    if key in _SIDE_KEYS:
        return 55 + 2 * _SIDE_KEYS.index(key) + side
    return 55 + 2 * len(_SIDE_KEYS) + _MIDLINE_KEYS.index(key)


LABEL_OF = np.zeros(256, dtype=np.uint8)  # identity -> label 0..27
SIDE_OF = np.zeros(256, dtype=np.uint8)  # identity -> 0 none, 1 left, 2 right
for _s in STRUCTURES:
    for _side in (0, 1):
        LABEL_OF[ident_of(_s.key, _side)] = _s.label
        SIDE_OF[ident_of(_s.key, _side)] = _side + 1
for _k in _SIDE_KEYS:
    for _side in (0, 1):
        SIDE_OF[ident_of(_k, _side)] = _side + 1


@dataclass(frozen=True)
class Station:
    """One UKB station's geometry (axial, identity orientation)."""

    number: int
    shape: tuple[int, int, int]  # (columns along x, rows along y, slices along z)
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]  # centre of voxel (0, 0, 0), LPS mm

    @property
    def geometry(self) -> Volume:
        """An empty Volume with this station's grid (data is a zero-size broadcast view)."""
        return Volume(np.broadcast_to(np.float32(0), self.shape), self.spacing, self.origin)

    @property
    def z_range(self) -> tuple[float, float]:
        return self.origin[2], self.origin[2] + (self.shape[2] - 1) * self.spacing[2]


@dataclass(frozen=True)
class Signal:
    """Per-subject Dixon tissue signals (arbitrary units, UKB-like: muscle water 200-400)."""

    muscle_water: float
    muscle_fat_fraction: float
    fat: float
    noise_sd: float
    bias_amplitude: float


@dataclass(frozen=True)
class Anatomy:
    """One phantom subject: shapes, scan placement, tissue signals and the volumes it was sized to."""

    seed: int
    sex: int  # 1 male, 0 female
    height_cm: float
    prims: Primitives
    scale: np.ndarray  # (256,) per-identity area factor found by calibration
    fat_knots: np.ndarray  # (m, 2): z, subcutaneous fat thickness (mm)
    fold_z: float  # gluteal fold: one body outline above, two thighs below
    z_range: tuple[float, float]  # extent of the modelled body
    stations: tuple[Station, ...]
    signal: Signal
    targets: dict[tuple[str, str], float] = field(default_factory=dict)  # cm³ inside the fused field

    def station(self, number: int) -> Station:
        return self.stations[number - 1]

    @property
    def fused_z_range(self) -> tuple[float, float]:
        lo = min(self.station(n).z_range[0] for n in FUSED_STATIONS)
        hi = max(self.station(n).z_range[1] for n in FUSED_STATIONS)
        return lo, hi


def body_layout(anatomy: Anatomy, zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-outline ellipses (nz, 2, 4) and subcutaneous fat thickness (nz,) at heights ``zs``."""
    return _hulls(anatomy.prims, anatomy.scale, zs, anatomy.fold_z), np.interp(
        zs, anatomy.fat_knots[:, 0], anatomy.fat_knots[:, 1])


def _hulls(prims: Primitives, scale: np.ndarray, zs: np.ndarray, fold_z: float) -> np.ndarray:
    params, active = slice_params(prims, zs, scale)
    hx, hy = extents(params, prims.kind)
    solid = prims.tissue != tpl.VISCERA
    side = SIDE_OF[prims.ident]
    hulls = np.zeros((len(zs), 2, 4))
    groups = ((0, solid, zs > fold_z), (0, solid & (side == 1), zs <= fold_z), (1, solid & (side == 2), zs <= fold_z))
    for slot, members, where in groups:
        use = active & members[:, None] & where[None, :]
        x0 = np.where(use, params[..., 0] - hx, np.inf).min(axis=0)
        x1 = np.where(use, params[..., 0] + hx, -np.inf).max(axis=0)
        y0 = np.where(use, params[..., 1] - hy, np.inf).min(axis=0)
        y1 = np.where(use, params[..., 1] + hy, -np.inf).max(axis=0)
        ok = use.any(axis=0)
        x0, x1, y0, y1 = x0[ok], x1[ok], y0[ok], y1[ok]
        hulls[ok, slot] = np.stack([(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2], axis=1)
    return hulls


def default_volumes(rng: np.random.Generator, sex: int, height_cm: float) -> dict[tuple[str, str], float]:
    """Plausible per-structure volumes (cm³, inside the fused field) for a subject of this sex/height.

    Shares follow the simulated cohort's typical sizes (:data:`engine.demo.cohort.params.SIDE_VOLUME_CM3`)
    scaled to a TMV drawn for the sex; bones scale with height cubed.
    """
    mean, sd = TMV_CM3[sex]
    tmv = max(rng.normal(mean, sd), 0.5 * mean)
    muscle_keys = [s.key for s in STRUCTURES if s.is_muscle]
    raw = {k: SIDE_VOLUME_CM3[k] * np.exp(rng.normal(0, STRUCTURE_LOG_SD)) for k in muscle_keys}
    total = 2 * sum(raw.values())
    out: dict[tuple[str, str], float] = {}
    for s in STRUCTURES:
        if s.is_muscle:
            base = raw[s.key] * tmv / total
        else:
            base = SIDE_VOLUME_CM3[s.key] * (height_cm / tpl.REFERENCE_HEIGHT_CM) ** 3
            base *= 1.0 if sex == MALE else BONE_SCALE_FEMALE
        asym = np.exp(rng.normal(0, ASYMMETRY_LOG_SD))
        out[(s.key, "left")] = float(base * np.sqrt(asym))
        out[(s.key, "right")] = float(base / np.sqrt(asym))
    return out


def _validate_volumes(volumes: dict[tuple[str, str], float]) -> None:
    for key, value in volumes.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError(f"volumes keys must be (structure key, side) tuples, found {key!r}")
        if key[0] not in BY_KEY or key[1] not in SIDES:
            raise ValueError(f"unknown structure/side {key!r}; expected a key from store.structures and "
                             f"a side in {SIDES}")
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"volume for {key!r} must be a positive number of cm³, found {value!r}")


def _place_stations(rng: np.random.Generator, s_len: float, centre_xy: tuple[float, float]) -> tuple[Station, ...]:
    """Six stations stacked head (1) to knee (6) with small overlaps and in-plane offsets."""
    def station(n: int, z0: float) -> Station:
        rows, cols, slices = UKB_MATRICES[n - 1]
        dz = UKB_SLICE_MM[n - 1]
        cx = centre_xy[0] + rng.normal(0, STATION_OFFSET_SD_MM)
        cy = centre_xy[1] + rng.normal(0, STATION_OFFSET_SD_MM)
        origin = (cx - (cols - 1) / 2 * UKB_PIXEL_MM, cy - (rows - 1) / 2 * UKB_PIXEL_MM, z0)
        return Station(n, (cols, rows, slices), (UKB_PIXEL_MM, UKB_PIXEL_MM, dz), origin)

    def length(n: int) -> float:
        return (UKB_MATRICES[n - 1][2] - 1) * UKB_SLICE_MM[n - 1]

    def overlap() -> float:
        return float(rng.uniform(*STATION_OVERLAP_MM))

    top4 = HIP_STATION_TOP_MM * s_len + rng.normal(0, 5.0)
    z0 = {4: top4 - length(4)}
    for n in (3, 2, 1):  # upwards
        z0[n] = z0[n + 1] + length(n + 1) - overlap()
    for n in (5, 6):  # downwards
        z0[n] = z0[n - 1] + overlap() - length(n)
    return tuple(station(n, z0[n]) for n in range(1, 7))


def _build_prims(rng: np.random.Generator, s_len: float, s_w: float, z_lo: float, z_hi: float,
                 shift: tuple[float, float], pelvis: float = 1.0) -> Primitives:
    kinds, idents, tissues, knots = [], [], [], []
    femur_dx = rng.normal(0, 3.0, size=2)
    knee_spread = rng.normal(0, 8.0, size=2)
    yaw = np.deg2rad(rng.normal(0, YAW_SD_DEG))
    cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)

    def place(part: tpl.Part, side: int) -> None:
        sgn = 1.0 if side == 0 else -1.0  # left is +x in LPS
        k = np.array(part.knots, dtype=float)
        rows = []
        for row in k:
            z_ref = row[0]
            z = z_hi if z_ref >= tpl.TOP else z_lo if z_ref <= tpl.BOTTOM else z_ref * s_len
            zr = z / s_len  # reference height of this knot
            x, y = row[1], row[2]
            if part.rel and z_ref < part.rel_below:
                fx, fy = tpl.femur_line(zr)
                x, y = x + float(fx), y + float(fy)
            if not part.midline:
                x = x + femur_dx[side] + (knee_spread[side] * max(-zr, 0.0) / tpl.REFERENCE_FEMUR_MM)
                x *= 1.0 + (pelvis - 1.0) * float(np.clip((zr + PELVIS_BLEND_MM) / PELVIS_BLEND_MM, 0.0, 1.0))
            jit = rng.normal(0, POSITION_SD_MM, size=2)
            size = np.exp(rng.normal(0, SIZE_LOG_SD))
            theta = np.deg2rad(row[5] + rng.normal(0, ANGLE_SD_DEG))
            if part.kind == tpl.BAND:
                a, b, t = row[3] * s_w, row[4] * s_w, row[6] * s_w * size
                phic, phiw = np.deg2rad(row[7]), np.deg2rad(row[8])
            else:
                a, b, t = row[3] * s_w * size, row[4] * s_w * size, 0.0
                phic = phiw = 0.0
            xw, yw = x * s_w + jit[0], y * s_w + jit[1]
            if not part.midline and sgn < 0:  # mirror: x -> -x, rotations and polar angles mirror too
                xw, theta, phic = -xw, -theta, np.pi - phic
            xw, yw = cos_yaw * xw - sin_yaw * yw, sin_yaw * xw + cos_yaw * yw  # the subject lies slightly turned
            rows.append((z, xw + shift[0], yw + shift[1], a, b, theta + yaw, t, phic, phiw))
        arr = np.array(sorted(rows, key=lambda r: r[0]), dtype=float)
        arr = np.concatenate([arr, np.zeros((len(arr), 1))], axis=1)
        kinds.append(part.kind)
        idents.append(ident_of(part.key, side))
        tissues.append(part.tissue)
        knots.append(arr)

    for side in (0, 1):
        for part in tpl.SIDE_PARTS:
            place(part, side)
    for part in tpl.MIDLINE_PARTS:
        place(part, -1)
    priority = np.zeros(256)
    for i, t in zip(idents, tissues, strict=True):
        priority[i] = {tpl.MUSCLE: 1000.0, tpl.BONE: 3000.0, tpl.VISCERA: 0.0}[t]
        if LABEL_OF[i] == BY_KEY["femur"].label:
            priority[i] = 4000.0
    return Primitives(np.array(kinds), np.array(idents), np.array(tissues), tuple(knots), priority)


def measure_idents(ident: np.ndarray, voxel_mm3: float) -> np.ndarray:
    """cm³ per identity code (256,) from an identity map."""
    return np.bincount(ident.ravel(), minlength=256)[:256] * voxel_mm3 / 1000.0


def _calibration_grid(anatomy: Anatomy, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z0, z1 = anatomy.fused_z_range
    zs = np.arange(z0 + h / 2, z1, h)
    params, active = slice_params(anatomy.prims, zs, anatomy.scale)
    hx, hy = extents(params, anatomy.prims.kind)
    margin = 60.0
    x_lo = np.where(active, params[..., 0] - hx, np.inf).min() - margin
    x_hi = np.where(active, params[..., 0] + hx, -np.inf).max() + margin
    y_lo = np.where(active, params[..., 1] - hy, np.inf).min() - margin
    y_hi = np.where(active, params[..., 1] + hy, -np.inf).max() + margin
    return np.arange(x_lo, x_hi, h), np.arange(y_lo, y_hi, h), zs


def _first_guess(anatomy: Anatomy, want: np.ndarray) -> np.ndarray:
    """Area factors from the shapes' own cross-sections integrated over the fused z-range.

    Ignores overlaps and growth into free space, so it is only a start for :func:`_calibrate`.
    """
    z0, z1 = anatomy.fused_z_range
    dz = 5.0
    zs = np.arange(z0 + dz / 2, z1, dz)
    params, active = slice_params(anatomy.prims, zs, np.ones(256))
    a, b, t, phiw = params[..., 2], params[..., 3], params[..., 6], params[..., 8]
    band = (anatomy.prims.kind == tpl.BAND)[:, None]
    area = np.where(band, 2 * phiw * (a + b) / 2 * t, np.pi * a * b) * active
    est = np.zeros(256)
    np.add.at(est, anatomy.prims.ident, area.sum(axis=1) * dz / 1000.0)
    scale = np.ones(256)
    sel = (want > 0) & (est > 0)
    scale[sel] = np.clip(want[sel] / est[sel], 0.25, 4.0)
    return scale


def _calibrate(anatomy: Anatomy, targets: dict[tuple[str, str], float]) -> np.ndarray:
    """Area factors per identity so that volumes inside the fused z-range match ``targets``.

    A few rounds on a coarse grid, then on a finer one; structures interact (neighbours share
    boundaries), so each round corrects every structure by its measured/target ratio.
    """
    want = np.zeros(256)
    for (key, side), cm3 in targets.items():
        want[ident_of(key, SIDES.index(side))] = cm3
    sel = want > 0
    scale = _first_guess(anatomy, want)
    for spacing, rounds, rtol in CALIBRATION_SCHEDULE:
        xs, ys, zs = _calibration_grid(anatomy, spacing)
        fat = np.interp(zs, anatomy.fat_knots[:, 0], anatomy.fat_knots[:, 1])
        for _ in range(rounds):
            hulls = _hulls(anatomy.prims, scale, zs, anatomy.fold_z)
            ident, _tissue = classify(anatomy.prims, scale, xs, ys, zs, hulls, fat)
            got = measure_idents(ident, spacing**3)
            ratio = want[sel] / np.maximum(got[sel], 0.05 * want[sel])
            if np.all(np.abs(ratio - 1) < rtol):
                break
            scale[sel] *= np.clip(ratio, 0.5, 2.0) ** CALIBRATION_GAIN
    return scale


def sample_anatomy(rng: np.random.Generator, *, sex: int,
                   volumes: dict[tuple[str, str], float] | None = None, seed: int = -1) -> Anatomy:
    """Draw one phantom subject.

    Parameters
    ----------
    rng
        Source of all randomness (size, shape, position, asymmetry, scan placement, signals).
    sex
        1 male, 0 female (UKB field 31 coding).
    volumes
        Target cm³ per (structure key, side) *inside the fused field of view* (stations 3-6), e.g. a
        simulated participant's metrics; structures left out are drawn plausibly for the sex.
    seed
        Recorded in the anatomy (provenance only).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, found {type(rng).__name__}")
    if sex not in (0, 1):
        raise ValueError(f"sex must be 1 (male) or 0 (female), found {sex!r}")
    if volumes is not None:
        _validate_volumes(volumes)
    height = float(np.clip(rng.normal(*HEIGHT_CM[sex]), 145.0, 205.0))
    targets = default_volumes(rng, sex, height)
    targets.update(volumes or {})
    s_len = height / tpl.REFERENCE_HEIGHT_CM
    tmv = sum(v for (k, _), v in targets.items() if BY_KEY[k].is_muscle)
    ref_tmv = 2 * sum(SIDE_VOLUME_CM3[s.key] for s in STRUCTURES if s.is_muscle) * 0.97
    s_w = float(np.clip(np.sqrt(tmv / ref_tmv / s_len), 0.6, 1.5))
    shift = (float(rng.normal(0, 6.0)), float(rng.normal(0, 6.0)))
    stations = _place_stations(rng, s_len, (shift[0], 15.0 * s_w + shift[1]))
    z_lo = stations[-1].z_range[0] - 20.0
    z_hi = stations[0].z_range[1] + 20.0
    prims = _build_prims(rng, s_len, s_w, z_lo, z_hi, shift, float(rng.normal(*PELVIS_WIDTH[sex])))
    fat_mm = float(np.clip(rng.normal(*FAT_MM[sex]), 5.0, 45.0))
    knee = tpl.KNEE_Z * s_len
    fat_knots = np.array([(z_lo, 0.6 * fat_mm), (knee - 20, 0.6 * fat_mm), (knee + 60, fat_mm),
                          (0.0, fat_mm), (80.0 * s_len, 1.2 * fat_mm), (z_hi, 1.2 * fat_mm)])
    muscle_water = float(rng.normal(300.0, 25.0))
    signal = Signal(muscle_water=muscle_water, muscle_fat_fraction=float(rng.uniform(0.03, 0.09)),
                    fat=float(rng.normal(420.0, 30.0)), noise_sd=float(rng.uniform(0.035, 0.05) * muscle_water),
                    bias_amplitude=float(rng.uniform(0.08, 0.2)))
    anatomy = Anatomy(seed=seed, sex=sex, height_cm=height, prims=prims, scale=np.ones(256), fat_knots=fat_knots,
                      fold_z=tpl.GLUTEAL_FOLD_Z * s_len, z_range=(z_lo, z_hi), stations=stations, signal=signal,
                      targets=dict(targets))
    scale = _calibrate(anatomy, targets)
    return replace(anatomy, scale=scale)
