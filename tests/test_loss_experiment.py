"""handnet.experiments.losses: its measurements on hand-made heatmaps, and a tiny full run so the
documented experiment keeps working."""

import json

import cv2
import numpy as np
import pytest

from handnet.annotations import Hand, Sample
from handnet.config import DEFAULT_LABELS
from handnet.experiments import losses as experiment
from handnet.experiments.losses import LossExperiment, heatmap_figures, other_hand_figures, summary_table


def test_heatmap_figures_average_peaks_and_background_where_weighted():
    heat = np.zeros((1, 4, 4), np.float32)
    y = np.zeros((1, 4, 4, 2), np.float32)
    y[..., 1] = 1
    y[0, 1, 1, 0] = 1.0  # a peak
    heat[0, 1, 1] = 0.8
    y[0, 1, 2, 0] = 0.5  # a blob shoulder: neither peak nor background
    heat[0, 1, 2] = 0.6
    y[0, 3, 3, 1] = 0  # ignored pixel with a high score: not counted
    heat[0, 3, 3] = 0.9
    heat[0, 0, 0] = 0.13
    figures = heatmap_figures(heat, y)
    assert figures["mean_at_peaks"] == pytest.approx(0.8)
    assert figures["mean_on_background"] == pytest.approx(0.13 / 13)  # 16 - peak - shoulder - ignored


def test_other_hand_figures_read_the_best_score_inside_each_ignored_hand():
    heat = np.zeros((1, 6, 8), np.float32)
    heat[0, 2, 2] = 0.7  # inside the first other hand (centre cell (2, 2), radius 1.5 cells)
    heat[0, 5, 7] = 0.9  # far from both
    sample = Sample("x", (Hand(20, 20, 12, "other", "ignore"), Hand(52, 20, 8, "other", "ignore"),
                          Hand(40, 40, 8, "open", "positive")), 64, 48)
    figures = other_hand_figures(heat, [sample], stride=8, threshold=0.5)
    assert figures["other_hands"] == 2
    assert figures["other_mean_score"] == pytest.approx(0.35)
    assert figures["other_detected"] == pytest.approx(0.5)


def test_unknown_loss_or_regime_is_refused():
    with pytest.raises(ValueError, match="unknown or no loss"):
        LossExperiment(losses=["l2"])
    with pytest.raises(ValueError, match="unknown or no regime"):
        LossExperiment(regimes=["mid"])
    with pytest.raises(ValueError, match="needs dataset folders"):
        LossExperiment(regimes=["real"])
    assert LossExperiment(real_data=["x"]).regimes == ["near", "far", "real"]


def test_real_split_letterboxes_photos_and_maps_their_hands(tmp_path):
    from conftest import write_native

    root = write_native(tmp_path / "photos", {"a.jpg": [{"x": 40, "y": 30, "radius": 20, "label": "five"},
                                                        {"x": 160, "y": 100, "radius": 8, "label": "two"}]},
                        height=120, width=200)
    samples = experiment.load_samples([str(root)], "five=positive,*=ignore")
    split = experiment.real_split(samples, (48, 64))
    # 200 x 120 fits 64 x 48 as 64 x 38 (x scale 0.32, y scale 38/120), 5 black rows above and below.
    assert split.images.shape == (1, 48, 64, 3) and split.images.dtype == np.float32
    assert split.images[0, :5].max() == 0 and split.images[0, 43:].max() == 0
    first, second = split.samples[0].hands
    assert (first.x, first.y, first.radius, first.role) == pytest.approx((12.8, 14.5, 6.37, "positive"), abs=0.01)
    assert (second.role, second.label) == ("ignore", "two")
    assert (split.samples[0].width, split.samples[0].height) == (64, 48)


def test_tiny_real_run_splits_the_folder_per_seed(tiny_synthetic, tmp_path):
    out = tmp_path / "real"
    rc = experiment.main(["--losses", "bce", "--regimes", "real", "--real-data", str(tiny_synthetic),
                          "--real-labels", DEFAULT_LABELS, "--masks", "mask", "--seeds", "2",
                          "--steps", "6", "--size", "32", "48", "--out", str(out)])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["regime"], r["seed"]) for r in rows] == [("real", 0), ("real", 1)]
    assert "| real | bce | mask |" in (out / "table.md").read_text()
    datasets = experiment.make_datasets(LossExperiment(regimes=["real"], real_data=[str(tiny_synthetic)], seeds=2,
                                                       real_labels=DEFAULT_LABELS))
    names = {seed: {s.path for s in datasets["real", seed]["val"].samples} for seed in (0, 1)}
    assert names[0] and names[0] != names[1]  # each seed validates on other files
    assert not names[0] & {s.path for s in datasets["real", 0]["train"].samples}


def test_missing_real_folder_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    rc = experiment.main(["--regimes", "real", "--real-data", str(tmp_path / "nope"), "--out", str(out)])
    assert rc == 2 and not out.exists()
    assert "nope" in capsys.readouterr().err


def test_tiny_run_writes_every_figure_table_and_plot(tmp_path):
    out = tmp_path / "losses"
    rc = experiment.main(["--losses", "focal", "mse", "--regimes", "far", "--seeds", "2", "--steps", "6",
                          "--size", "32", "48", "--train-images", "16", "--val-images", "8", "--out", str(out)])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())
    assert sorted((r["loss"], r["mask"], r["seed"]) for r in rows) == sorted(
        (loss, mask, seed) for loss in ("focal", "mse") for mask in ("mask", "no_mask") for seed in (0, 1))
    for row in rows:
        assert 0 <= row["mean_on_background"] <= 1
        assert len(row["curve"]) == experiment.CHECKPOINTS and row["curve"][-1][0] == 6
        assert row["threshold"] in experiment.THRESHOLDS
    # Same seed, same initial weights and batches: only the targets differ between mask and no_mask,
    # and two seeds start differently.
    focal = {(r["mask"], r["seed"]): r for r in rows if r["loss"] == "focal"}
    assert focal["mask", 0]["mean_on_background"] != focal["mask", 1]["mean_on_background"]
    table = (out / "table.md").read_text()
    assert table.count("| far | focal |") == 2 and "over 2 seed(s)" in table
    for png in ("curves.png", "scores.png", "heatmaps.png"):
        assert cv2.imread(str(out / png)) is not None, png
    assert json.loads((out / "experiment.json").read_text())["steps"] == 6


def test_summary_table_gives_mean_and_spread():
    rows = [{"regime": "near", "loss": "bce", "mask": "mask", "f1": f1, "ap": 0.5, "precision": 0.5, "recall": 0.5,
             "mean_at_peaks": 0.4, "mean_on_background": 0.01, "other_mean_score": None, "other_detected": None}
            for f1 in (0.6, 0.8)]
    table = summary_table(rows)
    assert "| near | bce | mask | 0.700 ± 0.100 |" in table
    assert table.splitlines()[2].endswith("| - | - |")
