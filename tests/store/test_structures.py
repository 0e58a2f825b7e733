import pytest

from store.structures import BONE_LABELS, MUSCLE_LABELS, STRUCTURES, labels_in, structure


def test_table_matches_architecture():
    assert [s.label for s in STRUCTURES] == list(range(1, 28))
    assert len(MUSCLE_LABELS) == 25 and BONE_LABELS == (26, 27)
    assert labels_in("anterior") == (1, 2, 3, 4, 5)
    assert labels_in("posterior") == (19, 20, 21)
    assert len(labels_in("gluteal")) == 8 and len(labels_in("medial")) == 5 and len(labels_in("core")) == 4


def test_lookup_by_name_and_label():
    assert structure("Tensor fasciae latae").label == 13
    assert structure("biceps_femoris").label == 21
    assert structure(27).name == "Femur"
    with pytest.raises(ValueError, match="unknown structure label 28"):
        structure(28)
    with pytest.raises(ValueError, match="unknown structure 'deltoid'"):
        structure("deltoid")
