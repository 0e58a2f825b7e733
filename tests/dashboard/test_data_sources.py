"""The dashboard's read path per metric source: each source's segmentation files, the scan's images shared."""

from __future__ import annotations

from dashboard.data import artifacts, snapshot_version
from store.home import home as make_home
from store.writer import Writer
from tests.store.conftest import metric_rows


def test_artifacts_of_a_source_are_its_segmentation_and_any_sources_images(tmp_path):
    home = make_home(tmp_path / "msmv")
    files = {name: tmp_path / name for name in ("labels.nrrd", "meshes.npz", "water.nrrd", "mm_labels.nrrd",
                                                "mm_meshes.npz")}
    for path in files.values():
        path.write_bytes(b"x")

    def arts(*names: str) -> list[dict[str, str]]:
        return [{"kind": n.removeprefix("mm_").split(".")[0], "path": str(files[n])} for n in names]

    with Writer(home) as w:
        w.commit_subject(7, metric_rows(7), arts("labels.nrrd", "meshes.npz", "water.nrrd"),
                         {"kind": "engine", "input_sha256": "pkg"})
        w.commit_subject(7, metric_rows(7, 11.0), arts("mm_labels.nrrd", "mm_meshes.npz"),
                         {"kind": "label-import", "input_sha256": "mm"}, source="musclemap", kind="label-import")
    version = snapshot_version(str(home.root))
    imported = artifacts(version, 7, source="musclemap", root=str(home.root))
    assert imported == {"labels": str(files["mm_labels.nrrd"]), "meshes": str(files["mm_meshes.npz"]),
                        "water": str(files["water.nrrd"])}
    engine = artifacts(version, 7, source="msmv", root=str(home.root))
    assert engine == {"labels": str(files["labels.nrrd"]), "meshes": str(files["meshes.npz"]),
                      "water": str(files["water.nrrd"])}
    assert artifacts(version, 7, source="simulated", root=str(home.root)) == {"water": str(files["water.nrrd"])}
