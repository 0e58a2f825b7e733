"""The real per-subject pipeline on a tiny package: a failed mesh stage never costs the measurements."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.volume import Volume, read_nrrd
from engine.segmentation.checkpoint import ModelConfig, Sidecar
from engine.service.pipeline import PipelineOptions, process_package
from tests.engine.imaging.dicom.dicom_factory import tiny_ukb_specs, write_zip

TINY = ModelConfig(img_size=(16, 16, 16), hidden_size=24, mlp_dim=48, num_heads=2, feature_size=4)


@pytest.fixture
def fake_segmentation(monkeypatch):
    """Labels without a network: sartorius (1) in a 3x2x2 block left of the grid centre, femur (27) right."""

    def segment_fused(fused, checkpoint, *, overlap, runtime, onnx_cache, threads):
        assert isinstance(fused, dict) and runtime == "onnx"  # the fuse stage's volumes, not its files
        water = fused["water"]
        data = np.zeros(water.shape, dtype=np.uint8)
        cx = water.shape[0] // 2
        data[cx + 1:cx + 4, 2:4, 2:4] = 1  # +x is the patient's left in LPS
        data[cx - 4:cx - 1, 2:4, 2:4] = 27
        sc = Sidecar(model=TINY, labels={1: "Sartorius", 27: "Femur"})
        return Volume(data, water.spacing, water.origin, water.direction), sc

    monkeypatch.setattr("engine.segmentation.infer.segment_fused", segment_fused)


def test_a_mesh_failure_is_recorded_and_the_measurements_still_come_back(tmp_path, monkeypatch,
                                                                        fake_segmentation):
    package = write_zip(tmp_path / "1000001_20201_2_0.zip", tiny_ukb_specs())
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")

    def broken(*args, **kwargs):
        raise RuntimeError("Input mesh for decimation must be all triangles.")

    monkeypatch.setattr("engine.imaging.mesh.build_meshes", broken)
    result = process_package("job1", str(package), str(tmp_path / "work"), None,
                             PipelineOptions(checkpoint=str(ckpt), stations=(3, 4, 5, 6), torch_threads=1))
    assert result.eid == 1000001  # from the PatientID the factory writes
    assert result.summary["mesh_error"] == "RuntimeError: Input mesh for decimation must be all triangles."
    assert "meshes" not in {a["kind"] for a in result.artifacts}
    assert {"labels", "measure", "water"} <= {a["kind"] for a in result.artifacts}
    volumes = {(m["structure"], m["side"]): m["volume_cm3"] for m in result.metrics}
    labels = read_nrrd(tmp_path / "work" / "labels.nrrd")
    voxel_cm3 = float(np.prod(labels.spacing)) / 1000.0
    assert volumes[(1, "left")] == pytest.approx(12 * voxel_cm3)
    assert volumes[(27, "right")] == pytest.approx(12 * voxel_cm3)
    assert volumes[(1, "right")] == 0 and volumes[(27, "left")] == 0
    assert "mesh" in result.timings


def test_a_clean_run_keeps_the_meshes(tmp_path, fake_segmentation):
    package = write_zip(tmp_path / "1000001_20201_2_0.zip", tiny_ukb_specs())
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    result = process_package("job1", str(package), str(tmp_path / "work"), 1000001,
                             PipelineOptions(checkpoint=str(ckpt), stations=(3, 4, 5, 6), torch_threads=1))
    assert "mesh_error" not in result.summary
    assert "meshes" in {a["kind"] for a in result.artifacts}


def test_swapped_stations_reach_the_summary_the_coordinator_stores_as_provenance(tmp_path, fake_segmentation):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    specs = tiny_ukb_specs()
    specs[3].swapped = True  # station 4's water and fat series hold each other's images
    swapped = write_zip(tmp_path / "s" / "1000001_20201_2_0.zip", specs)
    clean = write_zip(tmp_path / "c" / "1000001_20201_2_0.zip", tiny_ukb_specs())
    for package, expected in ((swapped, [4]), (clean, [])):
        result = process_package("job1", str(package), str(tmp_path / "work" / package.parent.name), 1000001,
                                 PipelineOptions(checkpoint=str(ckpt), stations=(3, 4, 5, 6), torch_threads=1))
        assert result.summary["swapped_stations"] == expected


def test_structures_at_the_scan_ends_and_the_confidence_reach_the_summary(tmp_path, monkeypatch):
    """Piriformis (9) reaches the first slice along the body axis, sartorius (1) lies inside; the label
    map's header carries the network's low-confidence share."""
    from engine.segmentation.infer import CONFIDENCE_KEY

    def segment_fused(fused, checkpoint, *, overlap, runtime, onnx_cache, threads):
        assert isinstance(fused, dict) and runtime == "onnx"  # the fuse stage's volumes, not its files
        water = fused["water"]
        data = np.zeros(water.shape, dtype=np.uint8)
        cx, nz = water.shape[0] // 2, water.shape[2]
        data[cx + 1:cx + 4, 2:4, 0:2] = 9
        data[cx - 4:cx - 1, 2:4, nz // 2:nz // 2 + 2] = 1
        sc = Sidecar(model=TINY, labels={1: "Sartorius", 9: "Piriformis"})
        return Volume(data, water.spacing, water.origin, water.direction, {CONFIDENCE_KEY: "0.125000"}), sc

    monkeypatch.setattr("engine.segmentation.infer.segment_fused", segment_fused)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    package = write_zip(tmp_path / "1000001_20201_2_0.zip", tiny_ukb_specs())
    result = process_package("job1", str(package), str(tmp_path / "work"), 1000001,
                             PipelineOptions(checkpoint=str(ckpt), stations=(3, 4, 5, 6), torch_threads=1))
    assert result.summary["touches_edge"] == [9]
    assert result.summary["edge_share"] == {"9": 1.0}  # all of its (2 x 3)-voxel cross-section; sartorius none
    assert result.summary["low_confidence_share"] == 0.125
