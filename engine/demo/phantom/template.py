"""The reference pelvis-to-knee anatomy that phantom subjects are drawn from.

One side of a reference man (femur 460 mm), in *side-local* millimetres: ``x`` lateral from the
mid-sagittal plane, ``y`` posterior (LPS), ``z`` superior with 0 at the femoral-head centres. Sampling
(:mod:`engine.demo.phantom.anatomy`) mirrors it to both sides, scales it to the subject and perturbs it.

Every structure is one or more *primitives*: a cross-section that varies piecewise-linearly along
``z`` between knots. Two kinds:

- ``ELLIPSE``: a filled ellipse, knot columns ``z, x, y, a, b, theta`` (semi-axes a along the
  direction ``theta`` degrees from +x towards +y, b across it);
- ``BAND``: part of an elliptical ring (a curved plate or sheet), columns
  ``z, x, y, A, B, theta, t, phi_c, phi_w``: ring radii A, B about centre (x, y), thickness t,
  covering polar angles ``phi_c ± phi_w`` degrees (0 = lateral, +90 = posterior).

Knots marked ``rel`` give x, y as offsets from the femoral shaft line at that height, so thigh
muscles follow each subject's femur. ``TOP`` / ``BOTTOM`` stand for the top and bottom of the
subject's scan. Muscles taper to small ends (tendons), so no structure is cut flat.

The arrangement follows textbook cross-sections (Gray's Anatomy, thigh and gluteal region); sizes
here only seed the shapes: sampling calibrates each structure to its target volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ELLIPSE, BAND = 0, 1
MUSCLE, BONE, VISCERA = 2, 3, 5  # tissue codes shared with the render kernel
TOP, BOTTOM = 9999.0, -9999.0
REFERENCE_FEMUR_MM = 460.0  # head centre to knee joint of the reference man (height 176 cm)
REFERENCE_HEIGHT_CM = 176.0  # study Table 1, men
KNEE_Z = -467.0  # reference knee joint line


def femur_line(z: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Reference femoral shaft centre (x lateral, y posterior) at height ``z``: ~7° of adduction."""
    z = np.asarray(z, dtype=float)
    return 118.0 + 0.0758 * (z + 60.0), np.full_like(z, 6.0)


@dataclass(frozen=True)
class Part:
    """One primitive of the template."""

    key: str  # structure key from store.structures, or an unlabelled tissue name
    tissue: int
    kind: int
    knots: tuple[tuple[float, ...], ...]
    rel: bool = False  # knots below ``rel_below`` give offsets from the femur line
    rel_below: float = -55.0
    midline: bool = False  # world x, not mirrored (one copy, no side)


def _e(*rows: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in r) for r in rows)


def _sphere(z0: float, x: float, y: float, r: float, n: int = 9) -> tuple[tuple[float, ...], ...]:
    zs = np.linspace(-r, r, n)
    return _e(*((z0 + z, x, y, max(np.sqrt(max(r * r - z * z, 0.0)), 1.5), max(np.sqrt(max(r * r - z * z, 0.0)), 1.5), 0)
                for z in zs))


# fmt: off
SIDE_PARTS: tuple[Part, ...] = (
    # --- bones -----------------------------------------------------------------------------------
    Part("femur", BONE, ELLIPSE, _sphere(0.0, 88.0, 0.0, 24.0)),  # head
    Part("femur", BONE, ELLIPSE, _e((-30, 106, 5, 14, 10, 0), (-18, 104, 4, 30, 14, -10),
                                    (0, 100, 2, 28, 14, -15), (10, 96, 2, 12, 9, -15))),  # neck
    Part("femur", BONE, ELLIPSE, _e((18, 122, 12, 6, 6, 0), (8, 124, 10, 17, 19, 0),
                                    (-30, 122, 10, 21, 22, 0), (-60, 0, 0, 17, 17, 0)), rel=True),  # trochanter
    Part("femur", BONE, ELLIPSE, _e((-60, 0, 0, 17, 17, 0), (-100, 0, 0, 14.5, 14.5, 0), (-300, 0, 0, 13.5, 13.5, 0),
                                    (-385, 0, 0, 17, 15, 0), (-410, 0, 4, 32, 25, 0), (-435, 0, 8, 40, 30, 0),
                                    (-455, 0, 10, 38, 28, 0), (-463, 0, 10, 22, 16, 0)), rel=True),  # shaft, condyles
    Part("iliac_bone", BONE, BAND, _e((20, 62, 12, 40, 35, 0, 5, 10, 40), (40, 58, 14, 58, 48, 0, 10, 15, 60),
                                      (80, 52, 15, 78, 65, 0, 10, 25, 70), (115, 50, 15, 88, 72, 0, 8, 27, 72),
                                      (128, 50, 15, 90, 73, 0, 3, 27, 68))),  # wing
    Part("iliac_bone", BONE, ELLIPSE, _e((-25, 60, 20, 8, 12, 0), (-10, 58, 10, 14, 28, 0), (10, 62, 5, 16, 30, 0),
                                         (28, 70, 5, 26, 26, 0), (40, 70, 10, 18, 18, 0))),  # acetabulum
    Part("iliac_bone", BONE, ELLIPSE, _e((-68, 58, 55, 6, 6, 0), (-58, 58, 55, 16, 16, 0), (-35, 56, 48, 14, 18, 0),
                                         (-10, 56, 40, 10, 14, 0))),  # ischium
    Part("iliac_bone", BONE, ELLIPSE, _e((-32, 30, -30, 6, 4, 34), (-22, 34, -28, 32, 9, 34),
                                         (-8, 36, -26, 32, 9, 34), (0, 40, -22, 10, 6, 34))),  # superior pubic ramus
    Part("iliac_bone", BONE, ELLIPSE, _e((-55, 40, 20, 5, 4, -60), (-45, 36, 5, 28, 7, -60),
                                         (-30, 30, -10, 22, 7, -60))),  # inferior ramus
    Part("tibia", BONE, ELLIPSE, _e((-470, 0, 10, 22, 16, 0), (-478, 0, 10, 38, 28, 0), (-500, 0, 8, 26, 22, 0),
                                    (-560, 0, 4, 16, 15, 0), (BOTTOM, 0, 0, 15, 14, 0)), rel=True),
    # --- anterior --------------------------------------------------------------------------------
    Part("sartorius", MUSCLE, ELLIPSE, _e((80, 118, -50, 4, 3, 0), (60, 115, -58, 9, 6, 0), (0, 102, -72, 13, 7, 20),
                                          (-100, -18, -60, 14, 8, -30), (-230, -38, -45, 14, 8, -40),
                                          (-380, -46, 0, 12, 9, -70), (-440, -40, 15, 7, 6, 0),
                                          (-460, -38, 18, 3, 3, 0)), rel=True),
    Part("rectus_femoris", MUSCLE, ELLIPSE, _e((35, 110, -50, 4, 4, 0), (15, 105, -60, 10, 9, 0),
                                               (-60, -8, -62, 14, 12, 0), (-150, 5, -52, 17, 13, 0),
                                               (-300, 8, -48, 14, 11, 0), (-390, 5, -40, 8, 6, 0),
                                               (-420, 5, -38, 4, 3, 0)), rel=True),
    Part("vastus_lateralis", MUSCLE, ELLIPSE, _e((-25, 140, 5, 10, 15, 0), (-60, 35, 0, 18, 28, 0),
                                                 (-150, 42, -2, 20, 34, 0), (-300, 38, -5, 18, 30, 0),
                                                 (-390, 30, -10, 12, 18, 0), (-430, 25, -15, 5, 6, 0)), rel=True),
    Part("vastus_medialis", MUSCLE, ELLIPSE, _e((-80, -12, -18, 6, 8, 30), (-150, -20, -28, 13, 16, 30),
                                                (-280, -25, -28, 18, 22, 30), (-380, -28, -18, 20, 24, 20),
                                                (-430, -25, -10, 10, 12, 0), (-445, -25, -10, 4, 4, 0)), rel=True),
    Part("vastus_intermedius", MUSCLE, BAND, _e((-60, 0, 0, 20, 20, 0, 6, -60, 70),
                                                (-100, 0, 0, 23, 23, 0, 14, -60, 95),
                                                (-300, 0, 0, 24, 24, 0, 18, -60, 100),
                                                (-390, 0, -3, 22, 22, 0, 10, -70, 80),
                                                (-410, 0, -5, 22, 22, 0, 4, -80, 40)), rel=True),
    # --- gluteal ---------------------------------------------------------------------------------
    Part("gluteus_maximus", MUSCLE, ELLIPSE, _e((110, 45, 95, 10, 8, -20), (80, 60, 108, 30, 16, -20),
                                                (40, 78, 115, 50, 24, -25), (0, 98, 108, 56, 28, -30),
                                                (-40, 110, 90, 50, 26, -40), (-80, 118, 70, 36, 20, -55),
                                                (-115, 120, 45, 16, 12, -70), (-130, 120, 38, 5, 4, -70))),
    Part("gluteus_medius", MUSCLE, BAND, _e((125, 50, 15, 110, 95, 0, 5, 25, 50), (100, 50, 15, 118, 102, 0, 18, 20, 60),
                                            (60, 55, 15, 108, 95, 0, 22, 10, 60), (25, 60, 13, 88, 78, 0, 18, 0, 50),
                                            (15, 62, 12, 80, 70, 0, 5, 0, 30))),
    Part("gluteus_medius", MUSCLE, ELLIPSE, _e((30, 128, 25, 14, 24, 0), (0, 138, 15, 14, 20, 0),
                                               (-25, 132, 15, 8, 10, 0), (-35, 130, 15, 3, 3, 0))),
    Part("gluteus_minimus", MUSCLE, BAND, _e((100, 50, 15, 100, 85, 0, 4, 15, 40), (80, 52, 15, 92, 79, 0, 12, 10, 50),
                                             (40, 58, 14, 72, 62, 0, 12, 5, 45), (15, 62, 12, 55, 48, 0, 10, 0, 40),
                                             (5, 62, 12, 50, 44, 0, 3, 0, 30))),
    Part("gluteus_minimus", MUSCLE, ELLIPSE, _e((20, 112, -5, 10, 12, 0), (0, 118, -15, 10, 8, 0),
                                                (-15, 120, -12, 5, 5, 0))),
    Part("piriformis", MUSCLE, ELLIPSE, _e((48, 60, 60, 15, 5, -30), (38, 72, 50, 42, 9, -30),
                                           (22, 75, 45, 45, 10, -30), (10, 80, 40, 25, 6, -30), (4, 85, 38, 8, 4, -30))),
    Part("obturator_internus", MUSCLE, ELLIPSE, _e((25, 40, 15, 4, 10, 0), (10, 37, 10, 8, 24, 0),
                                                   (-15, 38, 5, 8, 24, 0), (-35, 40, 0, 5, 12, 0))),
    Part("obturator_internus", MUSCLE, ELLIPSE, _e((8, 80, 45, 6, 3, -25), (-2, 82, 42, 25, 6, -25),
                                                   (-12, 80, 40, 8, 3, -25))),
    Part("obturator_externus", MUSCLE, ELLIPSE, _e((-15, 62, 0, 8, 5, 27), (-25, 68, 2, 26, 9, 27),
                                                   (-40, 68, 2, 26, 9, 27), (-50, 65, 0, 10, 5, 27))),
    Part("pectineus", MUSCLE, ELLIPSE, _e((-15, 45, -35, 6, 4, 20), (-30, 55, -32, 20, 9, 20),
                                          (-54, 72, -22, 18, 10, 30), (-85, -18, 0, 10, 8, 45),
                                          (-95, -18, 2, 4, 3, 45)), rel=True),
    Part("tensor_fasciae_latae", MUSCLE, ELLIPSE, _e((75, 122, -45, 4, 3, -45), (55, 128, -40, 12, 8, -45),
                                                     (0, 138, -30, 16, 10, -50), (-60, 35, -30, 12, 8, -60),
                                                     (-110, 40, -28, 5, 4, -60), (-125, 40, -28, 2, 2, -60)), rel=True),
    # --- medial ----------------------------------------------------------------------------------
    Part("adductor_magnus", MUSCLE, ELLIPSE, _e((-40, 52, 38, 8, 6, 30), (-54, 60, 35, 25, 18, 30),
                                                (-150, -35, 22, 28, 22, 30), (-260, -40, 25, 30, 24, 30),
                                                (-340, -35, 20, 22, 18, 30), (-400, -30, 10, 8, 8, 0),
                                                (-415, -30, 8, 3, 3, 0)), rel=True),
    Part("adductor_longus", MUSCLE, ELLIPSE, _e((-25, 25, -38, 6, 5, -30), (-45, 35, -38, 16, 10, -30),
                                                (-100, -52, -22, 20, 12, -40), (-170, -42, -8, 16, 11, -40),
                                                (-240, -22, 10, 8, 6, -40), (-255, -20, 12, 3, 3, 0)), rel=True),
    Part("adductor_brevis", MUSCLE, ELLIPSE, _e((-40, 32, -15, 6, 5, 0), (-52, 45, -15, 16, 10, -20),
                                                (-110, -38, -2, 16, 10, -30), (-160, -18, 10, 8, 6, -30),
                                                (-175, -15, 12, 3, 3, 0)), rel=True),
    Part("gracilis", MUSCLE, ELLIPSE, _e((-45, 20, -15, 4, 6, 0), (-52, 25, -8, 8, 16, 0), (-200, -68, 10, 8, 14, 10),
                                         (-330, -60, 20, 8, 12, 20), (-430, -50, 30, 6, 7, 0),
                                         (-475, -45, 35, 3, 3, 0)), rel=True),
    Part("quadratus_femoris", MUSCLE, ELLIPSE, _e((-40, 80, 45, 10, 4, -27), (-50, 82, 45, 24, 9, -27),
                                                  (-70, 82, 45, 24, 9, -27), (-82, 82, 45, 10, 4, -27))),
    # --- posterior -------------------------------------------------------------------------------
    Part("semimembranosus", MUSCLE, ELLIPSE, _e((-60, 62, 58, 5, 4, 0), (-90, -45, 52, 10, 8, 0),
                                                (-200, -25, 48, 12, 10, 0), (-330, -25, 48, 18, 15, 0),
                                                (-420, -28, 38, 14, 12, 0), (-460, -30, 30, 6, 5, 0),
                                                (-475, -30, 28, 2, 2, 0)), rel=True, rel_below=-80.0),
    Part("semitendinosus", MUSCLE, ELLIPSE, _e((-60, 68, 65, 6, 5, 0), (-100, -37, 64, 12, 10, 0),
                                               (-200, -8, 62, 14, 10, 0), (-330, -15, 60, 10, 8, 0),
                                               (-420, -30, 50, 5, 4, 0), (-470, -40, 35, 3, 3, 0)), rel=True, rel_below=-80.0),
    Part("biceps_femoris", MUSCLE, ELLIPSE, _e((-60, 72, 62, 5, 4, 0), (-100, -33, 58, 10, 9, 20),
                                               (-200, 22, 50, 16, 13, 40), (-320, 30, 42, 18, 15, 40),
                                               (-420, 35, 30, 12, 10, 30), (-470, 38, 25, 5, 4, 0),
                                               (-485, 38, 25, 2, 2, 0)), rel=True, rel_below=-80.0),
    # --- core ------------------------------------------------------------------------------------
    Part("multifidus", MUSCLE, ELLIPSE, _e((25, 14, 95, 5, 4, 0), (50, 16, 98, 10, 7, 0), (90, 18, 92, 13, 12, 0),
                                           (130, 19, 82, 14, 18, 0), (TOP, 20, 78, 15, 20, 0))),
    Part("iliopsoas", MUSCLE, ELLIPSE, _e((TOP, 35, 28, 17, 15, 0), (130, 40, 25, 19, 17, 0), (90, 50, 15, 20, 17, 30),
                                          (50, 60, -8, 19, 15, 40), (15, 72, -32, 18, 13, 20),
                                          (-15, 82, -36, 16, 13, 15), (-40, 95, -20, 12, 10, 30),
                                          (-62, -14, 8, 6, 6, 0), (-70, -14, 8, 2, 2, 0)), rel=True),
    Part("iliopsoas", MUSCLE, BAND, _e((115, 50, 15, 72, 56, 0, 4, 10, 40), (95, 51, 15, 68, 54, 0, 14, 5, 45),
                                       (60, 54, 15, 58, 48, 0, 16, 0, 45), (35, 58, 14, 45, 38, 0, 12, -10, 40),
                                       (20, 62, 12, 35, 30, 0, 4, -20, 30))),  # iliacus
    Part("abdominal_oblique", MUSCLE, BAND, _e((55, 0, 10, 138, 100, 0, 3, 0, 45), (75, 0, 10, 140, 104, 0, 14, 0, 55),
                                               (150, 0, 10, 150, 110, 0, 16, 0, 58),
                                               (TOP, 0, 10, 150, 110, 0, 18, 0, 60))),
    Part("rectus_abdominis", MUSCLE, ELLIPSE, _e((-20, 15, -50, 6, 4, 0), (-5, 22, -62, 14, 6, 10),
                                                 (40, 32, -85, 26, 7, 0), (120, 38, -95, 32, 8, 0),
                                                 (TOP, 40, -98, 34, 9, 0))),
    # --- unlabelled tissue: a model must learn to leave it alone ------------------------------------
    Part("erector_spinae", MUSCLE, ELLIPSE, _e((95, 45, 80, 5, 5, 0), (120, 45, 78, 18, 18, 0),
                                               (TOP, 48, 75, 25, 22, 0))),
    Part("calf", MUSCLE, ELLIPSE, _e((-440, 0, 42, 10, 8, 0), (-470, 0, 45, 30, 18, 0), (-520, 0, 40, 45, 30, 0),
                                     (-600, 0, 36, 46, 32, 0), (-750, 0, 30, 36, 26, 0),
                                     (BOTTOM, 0, 25, 25, 20, 0)), rel=True),
    Part("tibialis_anterior", MUSCLE, ELLIPSE, _e((-490, 22, -18, 6, 5, 0), (-540, 24, -14, 14, 10, 0),
                                                  (BOTTOM, 20, -8, 10, 8, 0)), rel=True),
)

MIDLINE_PARTS: tuple[Part, ...] = (
    Part("sacrum", BONE, ELLIPSE, _e((15, 0, 80, 10, 8, 0), (40, 0, 75, 30, 15, 0), (80, 0, 65, 45, 20, 0),
                                     (110, 0, 55, 48, 22, 0), (125, 0, 45, 30, 20, 0)), midline=True),
    Part("vertebra", BONE, ELLIPSE, _e((110, 0, 38, 10, 8, 0), (120, 0, 38, 22, 18, 0), (TOP, 0, 35, 25, 20, 0)),
         midline=True),
    Part("spinous", BONE, ELLIPSE, _e((115, 0, 72, 4, 10, 0), (125, 0, 70, 6, 18, 0), (TOP, 0, 70, 6, 20, 0)),
         midline=True),
    Part("viscera", VISCERA, ELLIPSE, _e((-25, 0, 10, 15, 15, 0), (0, 0, 5, 40, 35, 0), (30, 0, 0, 60, 40, 0),
                                         (60, 0, -5, 100, 65, 0), (120, 0, -10, 115, 75, 0),
                                         (TOP, 0, -10, 120, 75, 0)), midline=True),
)
# fmt: on

UNLABELLED_KEYS: tuple[str, ...] = ("tibia", "erector_spinae", "calf", "tibialis_anterior")
MIDLINE_KEYS: tuple[str, ...] = ("sacrum", "vertebra", "spinous", "viscera")
GLUTEAL_FOLD_Z = -75.0  # below it the body outline splits into two thighs
