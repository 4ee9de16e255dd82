"""Losses compared over seeds (handnet.gesture_study): the paired figures against hand-computed
references, the flags, and a two-seed study on toy shapes end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from handnet.metrics import decide_gestures, gesture_figures, paired_difference, t_975, unseen_to_na_at


def test_unseen_to_na_at_matched_known_accuracy_matches_a_hand_count():
    truth = [0, 1, 0, 2]  # two known gestures, then a trained unknown (never counted here)
    scores = [[0.9, 0.05, 0.05],  # right, top 0.9
              [0.3, 0.6, 0.1],  # right, top 0.6
              [0.2, 0.7, 0.1],  # wrong whatever the threshold
              [0.1, 0.1, 0.8]]
    unseen = [[0.5, 0.2, 0.3],  # na once the threshold is above 0.5
              [0.1, 0.8, 0.1],  # na above 0.8
              [0.2, 0.2, 0.6]]  # na at any threshold: its top output is na's
    # Known accuracy 2/3 up to a threshold of 0.6, 1/3 up to 0.9, then 0; unseen -> na 1/3 up to
    # 0.5, 2/3 up to 0.8, then 1. Keeping 2/3 allows at most 0.6: 2/3 of the unseen go to na.
    levels = [0.9, 2 / 3, 0.5, 1 / 3, 0.0]
    got = unseen_to_na_at(truth, scores, unseen, 2, levels)
    assert math.isnan(got[0])  # no threshold keeps 0.9
    assert got[1:] == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    # Each figure is reached by a real threshold, read the way predictions are.
    assert gesture_figures(truth, decide_gestures(np.array(scores), 0.6), 2)["known_accuracy"] == pytest.approx(2 / 3)
    assert np.mean(decide_gestures(np.array(unseen), 0.6) == 2) == pytest.approx(2 / 3)
    assert np.isnan(unseen_to_na_at(truth, scores, np.zeros((0, 3)), 2, levels)).all()  # no unseen crops


def test_paired_difference_matches_a_hand_computed_t_interval():
    # Differences 0.1, 0.0, 0.2: mean 0.1, sample standard deviation 0.1, t(2) = 4.303.
    paired = paired_difference([0.5, 0.6, 0.7], [0.6, 0.6, 0.9])
    half = 4.303 * 0.1 / math.sqrt(3)
    assert paired["mean"] == pytest.approx(0.1)
    assert (paired["low"], paired["high"]) == pytest.approx((0.1 - half, 0.1 + half))
    assert (paired["ahead"], paired["behind"], paired["pairs"]) == (2, 0, 3)
    one = paired_difference([0.5, None, 0.4], [0.7, 0.9, float("nan")])  # only the first pair counts
    assert one["mean"] == pytest.approx(0.2) and one["low"] is None and one["pairs"] == 1
    with pytest.raises(ValueError, match="as many values"):
        paired_difference([0.1], [0.1, 0.2])


def test_t_quantiles_match_published_tables():
    published = {1: 12.706, 2: 4.303, 9: 2.262, 19: 2.093, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
    for df, value in published.items():
        assert t_975(df) == pytest.approx(value, abs=1e-3), df
    with pytest.raises(ValueError):
        t_975(0)


def test_seeds_flags_parse_ranges_and_refuse_bad_input(capsys):
    import train

    assert train.parse_seeds(["0-2", "5"]) == [0, 1, 2, 5]
    for bad in (["3-1"], ["a"], ["0-2", "2"], ["-1"]):
        with pytest.raises(ValueError, match="--seeds"):
            train.parse_seeds(bad)
    for argv, message in ((["--seeds", "0-1"], "add --compare"),
                          (["--compare", "ce", "--seeds", "0", "1"], "two losses"),
                          (["--compare", "ce", "bce_na", "--seeds", "2-0"], "rising ranges")):
        with pytest.raises(SystemExit) as exit_info:
            train.main(["gestures", *argv])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_a_study_pairs_every_seed_s_runs_and_writes_its_tables(tmp_path):
    """Two seeds of ce against bce_na on toy shapes: the study's figures are the runs' own, and
    the paired differences are theirs, seed by seed."""
    from conftest import TOY_GESTURE_SIDE, write_shape_folders

    import train

    data, _ = write_shape_folders(tmp_path / "shapes", per_class=16)
    out = tmp_path / "study"
    assert train.main(["gestures", "--data", str(data), "--compare", "ce", "bce_na", "--seeds", "0-1",
                       "--input-side", str(TOY_GESTURE_SIDE), "--backbone", "small", "--width", "8", "--epochs", "2",
                       "--batch-size", "16", "--group-size", "4", "--no-export", "--out", str(out)]) == 0
    study = json.loads((out / "study.json").read_text())
    assert study["seeds"] == [0, 1] and study["losses"] == ["ce", "bce_na"] and study["reference"] == "ce"
    for loss in ("ce", "bce_na"):
        for position, seed in enumerate((0, 1)):
            run = out / f"s{seed}" / loss
            results = json.loads((run / "results.json").read_text())
            assert study["per_seed"][loss]["known_accuracy"][position] == results["known_accuracy"]
            assert study["per_seed"][loss]["unseen_to_na_at_0.4"][position] == \
                results["at_article_threshold"]["unseen_to_na"]
            with np.load(run / "scores.npz") as saved:  # the scores the study reads are the run's
                figures = gesture_figures(saved["truth"], decide_gestures(saved["scores"], results["threshold"]), 2)
                assert figures["known_accuracy"] == pytest.approx(results["known_accuracy"])
                assert np.mean(decide_gestures(saved["unseen_scores"], results["threshold"]) == 2) == \
                    pytest.approx(results["unseen_to_na"])
    differences = [b - a for a, b in zip(study["per_seed"]["ce"]["unseen_to_na"],
                                         study["per_seed"]["bce_na"]["unseen_to_na"])]
    assert study["paired"]["bce_na"]["unseen_to_na"]["mean"] == pytest.approx(np.mean(differences))
    assert len(study["at_known_accuracy"]["bce_na"]) == 2  # one curve per seed
    assert (out / "operating.png").stat().st_size > 0
    table = (out / "study.md").read_text()
    assert "bce_na vs ce" in table and "unseen -> na, tuned threshold" in table

    # Summarised again from the folder alone, it says the same; a folder with no study is refused.
    from handnet.gesture_study import main

    (out / "study.md").unlink()
    assert main([str(out)]) == 0
    assert (out / "study.md").read_text() == table
    assert main([str(tmp_path / "shapes")]) == 2


def test_a_level_some_loss_cannot_keep_is_left_out_for_every_loss(tmp_path):
    """Seed 1's ce model gets half its known crops wrong, so no threshold keeps 0.99 known
    accuracy there: that seed leaves the 0.99 row for both losses, and the row pairs seed 0 alone."""
    from handnet.config import GestureConfig
    from handnet.gesture_study import study_markdown, summarise_study

    good = [[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]]  # one known gesture, then na; every known crop right
    poor = [[0.9, 0.1], [0.3, 0.7], [0.1, 0.9]]  # the second known crop's top output is na's
    unseen = [[0.7, 0.3], [0.95, 0.05]]  # at a threshold of 0.8 (the highest keeping 1.0), one of two is na
    figures = {"ce": (0.70, 0.40), "bce_na": (0.80, 0.65)}  # seed-0 / seed-1 unseen_to_na, as results.json says
    for seed in (0, 1):
        for loss in ("ce", "bce_na"):
            run = tmp_path / f"s{seed}" / loss
            run.mkdir(parents=True)
            GestureConfig(data="crops", loss=loss, seed=seed).save(run / "config.json")
            np.savez(run / "scores.npz", truth=np.array([0, 0, 1]), scores=np.array(poor if (seed, loss) == (1, "ce")
                                                                                       else good),
                     unseen_scores=np.array(unseen))
            (run / "results.json").write_text(json.dumps({
                "known_accuracy": 1.0, "unseen_to_na": figures[loss][seed], "unseen_auroc": 0.9,
                "at_article_threshold": {"known_accuracy": 1.0, "unseen_to_na": 0.0}}))
    summary = summarise_study(tmp_path, [0, 1], ("ce", "bce_na"))
    assert summary["per_seed"]["ce"]["unseen_to_na_at_known_0.99"] == [0.5, None]
    assert summary["per_seed"]["bce_na"]["unseen_to_na_at_known_0.99"] == [0.5, None]
    assert summary["paired"]["bce_na"]["unseen_to_na_at_known_0.99"]["pairs"] == 1
    tuned = summary["paired"]["bce_na"]["unseen_to_na"]  # differences 0.10 and 0.25
    assert tuned["mean"] == pytest.approx(0.175) and (tuned["ahead"], tuned["behind"]) == (2, 0)
    half = 12.706 * np.std([0.10, 0.25], ddof=1) / math.sqrt(2)
    assert (tuned["low"], tuned["high"]) == pytest.approx((0.175 - half, 0.175 + half))
    assert "kept >= 0.99 (n = 1) | 0.500 | 0.500 | +0.000, 0 / 0 |" in study_markdown(summary)
