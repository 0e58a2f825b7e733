"""The 27 labelled structures (docs/architecture.md, "The 27 structures"): the one table in the code.

Label values 1-27 (0 = background). Labels are not sided; left/right come from splitting each
structure at the mid-sagittal plane. A checkpoint carries its own label table; this is the default.
"""

from __future__ import annotations

from dataclasses import dataclass

SIDES: tuple[str, ...] = ("left", "right")
COMPARTMENTS: tuple[str, ...] = ("anterior", "gluteal", "medial", "posterior", "core", "bone")


@dataclass(frozen=True)
class Structure:
    """One labelled structure of the segmentation."""

    label: int
    key: str  # snake_case identifier used in column names, e.g. "rectus_femoris"
    name: str  # human-readable, e.g. "Rectus femoris"
    compartment: str

    @property
    def is_muscle(self) -> bool:
        return self.compartment != "bone"


_TABLE: tuple[tuple[int, str, str], ...] = (
    (1, "Sartorius", "anterior"),
    (2, "Rectus femoris", "anterior"),
    (3, "Vastus lateralis", "anterior"),
    (4, "Vastus medialis", "anterior"),
    (5, "Vastus intermedius", "anterior"),
    (6, "Gluteus maximus", "gluteal"),
    (7, "Gluteus medius", "gluteal"),
    (8, "Gluteus minimus", "gluteal"),
    (9, "Piriformis", "gluteal"),
    (10, "Obturator internus", "gluteal"),
    (11, "Obturator externus", "gluteal"),
    (12, "Pectineus", "gluteal"),
    (13, "Tensor fasciae latae", "gluteal"),
    (14, "Adductor magnus", "medial"),
    (15, "Adductor longus", "medial"),
    (16, "Adductor brevis", "medial"),
    (17, "Gracilis", "medial"),
    (18, "Quadratus femoris", "medial"),
    (19, "Semimembranosus", "posterior"),
    (20, "Semitendinosus", "posterior"),
    (21, "Biceps femoris", "posterior"),
    (22, "Multifidus", "core"),
    (23, "Iliopsoas", "core"),
    (24, "Abdominal oblique", "core"),
    (25, "Rectus abdominis", "core"),
    (26, "Iliac bone", "bone"),
    (27, "Femur", "bone"),
)

STRUCTURES: tuple[Structure, ...] = tuple(
    Structure(label, name.lower().replace(" ", "_"), name, compartment) for label, name, compartment in _TABLE
)
BY_LABEL: dict[int, Structure] = {s.label: s for s in STRUCTURES}
BY_KEY: dict[str, Structure] = {s.key: s for s in STRUCTURES}
MUSCLE_LABELS: tuple[int, ...] = tuple(s.label for s in STRUCTURES if s.is_muscle)
BONE_LABELS: tuple[int, ...] = tuple(s.label for s in STRUCTURES if not s.is_muscle)
#: Structures that leave the study's field (stations 3-6, pelvis to knee) in every subject, so they
#: are measured within the scanned range only: the core muscles run out of the top (multifidus,
#: psoas and the abdominal wall continue up the trunk); the muscles that cross the knee (the
#: quadriceps, sartorius, gracilis, semimembranosus, semitendinosus, biceps femoris) and the femur run
#: into the knee end. Every other structure is expected to lie wholly inside the field.
LEAVE_FIELD_LABELS: frozenset[int] = frozenset({22, 23, 24, 25, 1, 2, 3, 4, 5, 17, 19, 20, 21, 27})


def expected_inside(label: int) -> bool:
    """True when structure ``label`` should lie wholly inside a stations 3-6 field (see LEAVE_FIELD_LABELS)."""
    return label not in LEAVE_FIELD_LABELS


def labels_in(compartment: str) -> tuple[int, ...]:
    """Labels of one compartment, e.g. ``labels_in("posterior") == (19, 20, 21)``."""
    if compartment not in COMPARTMENTS:
        raise ValueError(f"unknown compartment {compartment!r}; expected one of {COMPARTMENTS}")
    return tuple(s.label for s in STRUCTURES if s.compartment == compartment)


def structure(ref: int | str) -> Structure:
    """Look a structure up by label value, key or display name."""
    if isinstance(ref, bool):
        raise TypeError("structure reference must be an int label or a str name, not bool")
    if isinstance(ref, int):
        try:
            return BY_LABEL[ref]
        except KeyError:
            raise ValueError(f"unknown structure label {ref}; expected 1-27") from None
    if isinstance(ref, str):
        key = ref.strip().lower().replace(" ", "_").replace("-", "_")
        if key in BY_KEY:
            return BY_KEY[key]
        raise ValueError(f"unknown structure {ref!r}; expected one of the 27 names in store/structures.py")
    raise TypeError(f"structure reference must be int or str, got {type(ref).__name__}")
