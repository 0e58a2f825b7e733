"""Training: label files (Slicer names), crops, a short run that learns, resume, best checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import EngineError
from engine.imaging.volume import Volume, read_image, write_nrrd
from engine.segmentation.cases import Case, case_folders, load_case, read_labels
from engine.segmentation.checkpoint import ModelConfig, Sidecar, load_checkpoint, read_sidecar
from engine.segmentation.infer import write_labels
from engine.segmentation.train import TrainConfig, _paired_crops, train, validate

TINY = ModelConfig(img_size=(16, 16, 16), hidden_size=24, mlp_dim=48, num_heads=2, feature_size=4)
TABLE = {1: "Sartorius", 2: "Rectus femoris"}


def _case(root, seed: int, *, margin: int = 0):
    rng = np.random.default_rng(seed)
    lab = np.zeros((20 + 2 * margin, 18 + 2 * margin, 16 + 2 * margin), np.uint8)
    m = margin
    lab[m + 4:m + 10, m + 4:m + 14, m + 3:m + 13] = 1
    lab[m + 11:m + 17, m + 4:m + 14, m + 3:m + 13] = 2
    water = np.where(lab == 1, 400.0, np.where(lab == 2, 200.0, 120.0)) + rng.normal(0, 5, lab.shape)
    folder = root / f"case{seed}"
    write_nrrd(folder / "water.nrrd", Volume(water.astype(np.float32), (2.0, 2.0, 2.0)))
    write_labels(folder / "labels.seg.nrrd", Volume(lab, (2.0, 2.0, 2.0)), TABLE)
    return folder


def test_slicer_names_map_onto_table_and_unknown_reported(tmp_path):
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[0], lab[1], lab[2] = 1, 2, 3
    header = {"Segment0_Name": "femur", "Segment0_LabelValue": "1", "Segment1_Name": "Vastus lateralis",
              "Segment1_LabelValue": "2", "Segment2_Name": "tumour", "Segment2_LabelValue": "3"}
    write_nrrd(tmp_path / "x.seg.nrrd", Volume(lab, (1.0, 1.0, 1.0)), extra_header=header)
    vol, unknown = read_labels(tmp_path / "x.seg.nrrd", {3: "Vastus lateralis", 27: "Femur"})
    assert unknown == ["tumour"]
    assert (vol.data[0] == 27).all() and (vol.data[1] == 3).all() and (vol.data[2] == 0).all()


def test_plain_labels_outside_table_fail(tmp_path):
    write_nrrd(tmp_path / "l.nrrd", Volume(np.full((2, 2, 2), 9, np.uint8), (1.0, 1.0, 1.0)))
    with pytest.raises(EngineError, match=r"label values \[9\] are not in the label table"):
        read_labels(tmp_path / "l.nrrd", TABLE)


def test_nifti_is_read_in_lps(tmp_path):
    import nibabel as nib

    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]  # RAS
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), affine), tmp_path / "w.nii.gz")
    v = read_image(tmp_path / "w.nii.gz")
    assert v.spacing == (2.0, 3.0, 4.0) and v.origin == (-10.0, -20.0, 30.0)
    assert np.allclose(v.direction, np.diag([-1.0, -1.0, 1.0]))


def test_crops_follow_pos_neg_ratio_and_keep_pairs(tmp_path):
    sc = Sidecar(model=TINY, labels=TABLE, spacing=(2.0, 2.0, 2.0))
    case = load_case(_case(tmp_path, 0, margin=8), sc)  # background wide enough that moved centres stay in it
    cfg = TrainConfig(crops=6, flip_lr=False, intensity_jitter=0.0)
    x, y = _paired_crops(case, (8, 8, 8), cfg, np.random.default_rng(0))
    assert x.shape == (6, 1, 8, 8, 8) and y.shape == (6, 1, 8, 8, 8)
    # image and label stayed aligned: label 1 voxels are the bright ones
    assert torch.all(x[y == 1] > 0.8) and torch.all((x[y == 2] > 0.2) & (x[y == 2] < 0.5))
    # MONAI draws each centre foreground with probability pos / (pos + neg): check both extremes
    for pos, neg, foreground in ((1.0, 0.0, True), (0.0, 1.0, False)):
        cfg1 = TrainConfig(crops=6, pos=pos, neg=neg, flip_lr=False, intensity_jitter=0.0)
        _, y1 = _paired_crops(case, (8, 8, 8), cfg1, np.random.default_rng(1))
        assert bool(torch.all((y1[:, 0, 4, 4, 4] > 0) == foreground))


def test_short_run_learns_resumes_and_keeps_best(tmp_path):
    torch.manual_seed(0)
    folders = [_case(tmp_path / "data", s) for s in range(3)]
    assert case_folders(tmp_path / "data") == folders
    sc = Sidecar(model=TINY, labels=TABLE, spacing=(2.0, 2.0, 2.0), training={"data": "toy boxes"})
    cfg = TrainConfig(lr=3e-3, batch_size=2, crops=2, max_epochs=6, val_every=2)
    out = tmp_path / "run"
    s1 = train(folders[:2], folders[2:], sc, out, cfg, progress=False, log=lambda _: None)
    assert s1.epoch == 6 and s1.step == 6 and len(s1.history) == 3
    assert (out / "last.pt").is_file()
    best = read_sidecar(out / "best.json")
    assert best.training["data"] == "toy boxes" and best.training["train_cases"] == 2
    assert best.metrics["validation_mean_dice"] == pytest.approx(max(h["val_dice"] for h in s1.history))
    model, _ = load_checkpoint(out / "best.pt")
    assert not model.training
    # resuming continues from epoch 6 instead of starting again
    s2 = train(folders[:2], folders[2:], sc, out, TrainConfig(**{**cfg.__dict__, "max_epochs": 8}),
               progress=False, log=lambda _: None)
    assert s2.epoch == 8 and s2.step == 8 and len(s2.history) == 4
    assert s2.history[:3] == s1.history


def test_learning_rate_warms_up_then_follows_the_cosine():
    from engine.segmentation.train import learning_rate

    cfg = TrainConfig(lr=1e-3, schedule="cosine", warmup_steps=10, max_steps=110)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak
    assert learning_rate(cfg, 4) == pytest.approx(5e-4)
    assert learning_rate(cfg, 10) == pytest.approx(1e-3)  # warm-up over: cos(0)
    assert learning_rate(cfg, 60) == pytest.approx(5e-4)  # half-way through the 100 decay steps: cos(pi/2)
    assert learning_rate(cfg, 85) == pytest.approx(0.5e-3 * (1 + np.cos(np.pi * 0.75)))
    assert learning_rate(cfg, 110) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(cfg, 500) == pytest.approx(0.0, abs=1e-12)  # resumed past the end stays at 0
    constant = TrainConfig(lr=2e-5)
    assert [learning_rate(constant, s) for s in (0, 1000)] == [2e-5, 2e-5]


def test_schedule_settings_are_checked():
    with pytest.raises(ValueError, match="cosine schedule needs max_steps"):
        TrainConfig(schedule="cosine")
    with pytest.raises(ValueError, match=r"schedule must be one of \('constant', 'cosine'\), got 'step'"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        TrainConfig(warmup_steps=-1)


def test_class_balanced_crops_centre_on_every_structure_equally(tmp_path):
    sc = Sidecar(model=TINY, labels=TABLE, spacing=(2.0, 2.0, 2.0))
    case = load_case(_case(tmp_path, 0, margin=8), sc)
    counts = {}
    for background in (0.0, 1.0):
        cfg = TrainConfig(crops=300, sampling="classes", background_ratio=background, flip_lr=False,
                          intensity_jitter=0.0)
        x, y = _paired_crops(case, (8, 8, 8), cfg, np.random.default_rng(2), num_classes=3)
        assert torch.all(x[y == 1] > 0.8)  # pairs stay aligned
        counts[background] = np.bincount(y[:, 0, 4, 4, 4].numpy().ravel(), minlength=3)  # the crop centres
    # no background centres at ratio 0, and the two structures split 300 draws ~ Binomial(300, 1/2) (sd 8.7)
    assert counts[0.0][0] == 0 and abs(counts[0.0][1] - 150) < 40
    # 1:1:1 -> each class ~ Binomial(300, 1/3) (sd 8.2)
    assert all(abs(c - 100) < 35 for c in counts[1.0])
    assert len(case.class_indices) == 1  # the per-class voxel lists were computed once and reused


def test_unknown_sampling_is_refused():
    with pytest.raises(ValueError, match=r"sampling must be one of \('posneg', 'classes'\), got 'uniform'"):
        TrainConfig(sampling="uniform")
    with pytest.raises(ValueError, match="background_ratio must be >= 0, got -1.0"):
        TrainConfig(sampling="classes", background_ratio=-1.0)


class _AlwaysOne(torch.nn.Module):
    """Predicts structure 1 at every voxel, air included."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((x.shape[0], 3, *x.shape[2:]), dtype=x.dtype)
        out[:, 1] = 1.0
        return out


def test_validation_scores_the_body_box_like_inference():
    # a 10^3-voxel body in 40^3 of air at 2 mm; the body box keeps 10 mm (5 voxels) around it -> 20^3
    sc = Sidecar(model=TINY, labels=TABLE, spacing=(2.0, 2.0, 2.0))
    image = np.zeros((1, 40, 40, 40), np.float32)
    image[0, 10:20, 10:20, 10:20] = 1.0
    label = (image > 0).astype(np.uint8)
    metrics = validate(_AlwaysOne(), [Case("body", image, label)], sc, overlap=0.25)
    # structure 1 predicted over the 8000-voxel box, true on 1000; structure 2 is absent and excluded
    assert metrics["dice"] == pytest.approx(2 * 1000 / (8000 + 1000))
    assert metrics["iou"] == pytest.approx(1000 / 8000)


class _CountingOne(_AlwaysOne):
    """:class:`_AlwaysOne` that counts the windows it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.windows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.windows += x.shape[0]
        return super().forward(x)


def test_validation_places_windows_as_the_sidecar_says():
    # a body box of 44 x 20 x 20 voxels (34 body voxels along x plus 5 of margin each side) under 16^3 windows
    image = np.zeros((1, 60, 20, 20), np.float32)
    image[0, 10:44] = 1.0
    label = (image > 0).astype(np.uint8)
    case = [Case("body", image, label)]
    counts = {}
    for name, min_overlap in (("grid", None), ("fewest", 0.1)):
        model = _CountingOne()
        validate(model, case, Sidecar(model=TINY, labels=TABLE, spacing=(2.0, 2.0, 2.0), min_overlap=min_overlap))
        counts[name] = model.windows
    # fixed grid at 0.25: step int(16 * 0.75) = 12, so 1 + ceil(28 / 12) = 4 windows along x, 1 + ceil(4 / 12) = 2
    # along y and z; fewest windows overlapping >= 10 %: step <= floor(16 * 0.9) = 14, so 1 + ceil(28 / 14) = 3
    # along x and still 2 along y and z
    assert counts == {"grid": 4 * 2 * 2, "fewest": 3 * 2 * 2}
    forced = _CountingOne()  # an explicit overlap forces the fixed grid whatever the sidecar says
    validate(forced, case, Sidecar(model=TINY, labels=TABLE, spacing=(2.0, 2.0, 2.0), min_overlap=0.1), overlap=0.25)
    assert forced.windows == 4 * 2 * 2


_TINY_CLI = ["--img-size", "16", "16", "16", "--hidden-size", "24", "--mlp-dim", "48", "--num-heads", "2",
             "--feature-size", "4", "--spacing", "2", "2", "2"]


def test_msmv_train_records_the_window_placement_it_validated_with(tmp_path, capsys):
    from engine.cli import build_parser, main

    for s in range(2):
        _case(tmp_path / "data", s)
    out = tmp_path / "run"
    args = ["train", str(tmp_path / "data"), "--out", str(out), *_TINY_CLI, "--epochs", "2", "--val-every", "2",
            "--batch-size", "1", "--crops", "1", "--threads", "1"]
    assert main([*args, "--min-overlap", "0.1"]) == 0
    best = read_sidecar(out / "best.json")
    assert best.min_overlap == 0.1 and best.training["recipe"]["val_overlap"] is None
    assert build_parser().parse_args(args).min_overlap is None  # default: MONAI's fixed grid
    assert main([*args, "--min-overlap", "1.5"]) == 2
    assert "msmv train: error: min_overlap must be in [0, 1) or None, got 1.5" in capsys.readouterr().err
