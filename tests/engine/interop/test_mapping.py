from __future__ import annotations

from pathlib import Path

import pytest

from engine.interop.mapping import MappingError, default_mapping, load_mapping, ts_class_map
from store.structures import BY_KEY, STRUCTURES


def _structure(fmt: str, key: str) -> tuple[str, str | None]:
    t = default_mapping(fmt).entries[key]
    return next(s.key for s in STRUCTURES if s.label == t.structure), t.side


def test_musclemap_values_from_its_anatomy_table() -> None:
    assert _structure("musclemap", "7141") == ("sartorius", "left")
    assert _structure("musclemap", "7142") == ("sartorius", "right")
    assert _structure("musclemap", "7181") == _structure("musclemap", "7191") == ("biceps_femoris", "left")
    assert _structure("musclemap", "5121") == _structure("musclemap", "6141") == ("iliopsoas", "left")
    assert _structure("musclemap", "6221") == ("quadratus_femoris", "left")
    assert _structure("musclemap", "6151") == ("iliac_bone", "left")
    assert _structure("musclemap", "6171") == ("femur", "left")
    assert "5141" in default_mapping("musclemap").ignored  # latissimus dorsi: no counterpart


def test_musclemap_covers_25_structures_not_the_abdominal_wall() -> None:
    mapped = {t.structure for t in default_mapping("musclemap").entries.values()}
    assert len(mapped) == 25
    assert {BY_KEY["abdominal_oblique"].label, BY_KEY["rectus_abdominis"].label}.isdisjoint(mapped)


def test_musclemap_label_set_depends_on_the_version() -> None:
    m = default_mapping("musclemap")
    assert {"6181", "6221"} <= m.label_set("1.2")
    assert {"6181", "6182", "6191", "6201", "6211", "6221"}.isdisjoint(m.label_set("1.1"))
    assert "7141" in m.label_set("1.0")


def test_merged_structures_are_named() -> None:
    merges = default_mapping("musclemap").merges()
    assert "iliopsoas left = iliacus left + psoas major left" in merges
    assert any("gemelli and quadratus femoris" in line for line in merges)


def test_totalsegmentator_defaults() -> None:
    ts = default_mapping("totalsegmentator")
    assert _structure("totalsegmentator", "gluteus_maximus_left") == ("gluteus_maximus", "left")
    assert ts.entries["quadriceps_femoris_right"].compartment == "anterior"
    assert ts.entries["thigh_posterior_compartment_left"].compartment == "posterior"
    assert {"hip_left", "hip_right", "autochthon_left", "autochthon_right"} <= set(ts.ignored)
    assert "hip_left" not in ts.entries


def test_totalsegmentator_class_map_by_version() -> None:
    assert ts_class_map("2.5.0")[40] == "gluteus_maximus_left" and len(ts_class_map("2.5.0")) == 50
    assert ts_class_map("2.4")[38] == "gluteus_maximus_left" and len(ts_class_map("2.4")) == 56
    with pytest.raises(MappingError, match="give --tool-version"):
        ts_class_map(None)


def test_user_mapping_opts_in_to_an_ignored_class(tmp_path: Path) -> None:
    user = tmp_path / "m.toml"
    user.write_text('[map]\nhip_left = { structure = "iliac bone", side = "left" }\nsartorius_right = "ignore"\n')
    m = load_mapping("totalsegmentator", user)
    assert m.entries["hip_left"].structure == BY_KEY["iliac_bone"].label
    assert "hip_left" not in m.ignored
    assert "sartorius_right" not in m.entries and "sartorius_right" in m.ignored
    assert "default totalsegmentator.toml + " in m.origin


@pytest.mark.parametrize(("body", "message"), [
    ('[map]\n"1" = "vastus maximus"\n', "unknown structure 'vastus maximus'"),
    ('[map]\n"1" = { structure = "sartorius", side = "middle" }\n', "side must be left or right"),
    ('[map]\n"1" = { compartment = "lateral" }\n', "unknown compartment 'lateral'"),
    ('[map]\n"1" = { structure = "sartorius", compartment = "anterior" }\n', "exactly one of structure or compartment"),
    ("[mapping]\n", r"unknown table\(s\) \['mapping'\]"),
    ("[map\n", "not a readable TOML mapping"),
])
def test_bad_mappings_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(MappingError, match=message):
        load_mapping("labelmap", path)


def test_labelmap_needs_a_mapping_and_unknown_formats_are_refused() -> None:
    with pytest.raises(MappingError, match="needs --mapping"):
        load_mapping("labelmap")
    with pytest.raises(MappingError, match="unknown format 'itk'"):
        load_mapping("itk")


def test_structure_notes_fold_sides_and_keep_only_what_is_not_one_label(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('[map]\n"1" = { structure = "gracilis", side = "left", name = "gracilis upper left" }\n'
                    '"2" = { structure = "gracilis", side = "left", name = "gracilis lower left" }\n'
                    '"3" = { structure = "gracilis", side = "right", name = "gracilis upper right" }\n'
                    '"4" = { structure = "femur", side = "left" }\n'
                    '"5" = { structure = "iliac_bone", name = "ilium", note = "the ilium only" }\n'
                    '"6" = { compartment = "medial", side = "R", name = "adductors R" }\n'
                    '"7" = { compartment = "medial", side = "L", name = "adductors L" }\n')
    notes = load_mapping("labelmap", path).structure_notes()
    assert notes == {"gracilis": "gracilis upper + gracilis lower", "iliac_bone": "ilium (the ilium only)"}
    mm = default_mapping("musclemap").structure_notes()
    assert mm["iliopsoas"] == "psoas major + iliacus"
    assert mm["biceps_femoris"] == "biceps femoris long head + biceps femoris short head"
    assert mm["quadratus_femoris"].startswith("gemelli and quadratus femoris (")
    assert "sartorius" not in mm  # one label a side
