"""Gesture classifier: targets, losses and the thresholded decision against hand-computed
references; data layout, crops and training end to end on toy shapes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from handnet.annotations import DatasetError
from handnet.config import GestureConfig
from handnet.gestures import gesture_targets, get_gesture_loss
from handnet.metrics import (
    auroc, choose_gesture_threshold, confusion_matrix, decide_gestures, gesture_figures, open_set_figures,
    thresholded_accuracy,
)


def test_targets_are_one_hot_except_bce_na_makes_na_all_zero():
    indices = [0, 2, 1, 2]  # two known gestures; index 2 is na
    one_hot = [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]]
    np.testing.assert_array_equal(gesture_targets(indices, 2, "ce"), one_hot)
    np.testing.assert_array_equal(gesture_targets(indices, 2, "bce"), one_hot)
    np.testing.assert_array_equal(gesture_targets(indices, 2, "bce_na"),
                                  [[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="unknown gesture loss"):
        gesture_targets(indices, 2, "mse")


@pytest.mark.parametrize("loss", ["ce", "bce", "bce_na"])
def test_losses_match_hand_computed_values(loss):
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)  # a known example, then an na one
    targets = gesture_targets([0, 2], 2, loss)
    if loss == "ce":  # -log of the true class's probability, averaged over examples
        expected = (-math.log(0.7) - math.log(0.6)) / 2
    elif loss == "bce":  # per output -[t log p + (1-t) log(1-p)], averaged over outputs, then examples
        first = -(math.log(0.7) + math.log(0.8) + math.log(0.9)) / 3
        second = -(math.log(0.9) + math.log(0.7) + math.log(0.6)) / 3
        expected = (first + second) / 2
    else:  # as bce, but the na example wants every output at 0, its na output included
        first = -(math.log(0.7) + math.log(0.8) + math.log(0.9)) / 3
        second = -(math.log(0.9) + math.log(0.7) + math.log(0.4)) / 3
        expected = (first + second) / 2
    got = float(get_gesture_loss(loss)(targets, scores))
    assert got == pytest.approx(expected, rel=1e-4)


def test_decision_and_thresholded_accuracy_match_a_hand_count():
    scores = np.array([
        [0.9, 0.05, 0.1],   # gesture 0
        [0.3, 0.35, 0.2],   # top 0.35 < 0.4: na (index 2)
        [0.1, 0.2, 0.6],    # na's own output wins: na
        [0.1, 0.45, 0.0],   # gesture 1
    ])
    np.testing.assert_array_equal(decide_gestures(scores, 0.4), [0, 2, 2, 1])
    truth = [0, 1, 2, 1]
    assert thresholded_accuracy(truth, scores, 0.4) == pytest.approx(3 / 4)
    assert thresholded_accuracy(truth, scores, 0.3) == pytest.approx(4 / 4)  # 0.35 now counts as gesture 1


def test_figures_and_confusion_matrix_match_a_hand_count():
    truth = [0, 0, 1, 1, 2, 2, 2]
    predicted = [0, 2, 1, 0, 2, 2, 1]
    np.testing.assert_array_equal(confusion_matrix(truth, predicted, 3, 3), [[1, 0, 1], [1, 1, 0], [0, 1, 2]])
    figures = gesture_figures(truth, predicted, known=2)
    assert figures["known_accuracy"] == pytest.approx(2 / 4)
    assert figures["unknown_to_na"] == pytest.approx(2 / 3)
    assert figures["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 3) / 3)
    assert figures["thresholded_accuracy"] == pytest.approx(4 / 7)


def test_open_set_figures_need_no_threshold_and_match_a_hand_count():
    # Two known gestures and na; na's own output (last column) never counts as known-ness.
    truth = [0, 1, 1, 2]
    scores = [[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.2, 0.99]]
    unseen = [[0.4, 0.1, 0.0], [0.2, 0.7, 0.0], [0.5, 0.5, 0.0]]
    figures = open_set_figures(truth, scores, unseen, known=2)
    # Known examples' top known scores 0.9, 0.6, 0.5; their top known gestures 0, 0, 1.
    assert figures["closed_set_accuracy"] == pytest.approx(2 / 3)
    # Against unseen 0.4, 0.7, 0.5: 0.9 beats 3, 0.6 beats 2, 0.5 beats 1 and ties 1 -> 6.5 of 9.
    assert figures["unseen_auroc"] == pytest.approx(6.5 / 9)
    # Against the trained unknown's 0.3 (its na score 0.99 is left out): all 3 above.
    assert figures["unknown_auroc"] == pytest.approx(1.0)
    assert open_set_figures(truth, scores, np.zeros((0, 3)), known=2)["unseen_auroc"] is None
    assert auroc([1, 2], [0, 3]) == pytest.approx(0.5)


def test_threshold_is_the_highest_that_keeps_known_accuracy_within_the_allowed_drop():
    truth = [0] * 10 + [1] * 10 + [2] * 4
    top = np.linspace(0.5, 0.95, 10)  # known examples' top scores, on both gestures alike
    scores = np.zeros((24, 3))
    scores[np.arange(10), 0] = top
    scores[np.arange(10, 20), 1] = top
    scores[20:, 0] = 0.3  # trained unknowns: rejected from 0.35 up
    # Known accuracy is 1.0 up to 0.5 and loses 0.1 per 0.05 step above it.
    assert choose_gesture_threshold(truth, scores, known=2, known_drop=0.0) == 0.5
    assert choose_gesture_threshold(truth, scores, known=2, known_drop=0.1) == 0.55
    assert choose_gesture_threshold(truth, scores, known=2, known_drop=0.25) == 0.6


def test_threshold_climbs_above_095_when_known_scores_saturate():
    truth = [0] * 10 + [1] * 10 + [2] * 4
    scores = np.zeros((24, 3))
    scores[np.arange(10), 0] = 0.992  # a trained softmax: known crops score near 1
    scores[np.arange(10, 20), 1] = 0.992
    scores[20:, 1] = 0.97  # a confident trained unknown: only a threshold above it says na
    assert choose_gesture_threshold(truth, scores, known=2, known_drop=0.0) == 0.99
    assert gesture_figures(truth, decide_gestures(scores, 0.99), 2)["unknown_to_na"] == 1.0


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown gesture loss"):
        GestureConfig(loss="softmax")
    with pytest.raises(ValueError, match="multiple of 8"):
        GestureConfig(input_side=30)
    with pytest.raises(ValueError, match="threshold"):
        GestureConfig(threshold=1.5)
    with pytest.raises(ValueError, match="mix_unknowns"):
        GestureConfig(mix_unknowns=1.5)
    with pytest.raises(ValueError, match="unknown gesture backbone"):
        GestureConfig(backbone="vgg")


# ---------------------------------------------------------------------------------------------
# Training end to end on toy shapes (conftest.toy_gestures)


def test_training_recognises_known_shapes_and_answers_na_for_others(toy_gestures):
    run, results = toy_gestures
    saved = json.loads((run / "results.json").read_text())
    assert saved["loss"] == "bce_na" and saved["classes"] == ["disk", "square", "na"]
    assert saved["known_accuracy"] >= 0.85
    assert saved["unknown_to_na"] >= 0.85
    assert saved["unseen_to_na"] is not None and 0 <= saved["unseen_to_na"] <= 1  # crosses, never trained on
    config = GestureConfig.load(run / "config.json")
    assert config.threshold == saved["threshold"]  # the tuned threshold is what the model carries
    assert config.classes == saved["classes"]
    for name in ("gestures.keras", "confusion.png", "confusion.json", "curves.png", "gestures-int8.tflite"):
        assert (run / name).is_file(), name
    confusion = json.loads((run / "confusion.json").read_text())
    counts = np.array(confusion["validation"]["counts"])
    assert counts.sum() == saved["counts"]["validation"]
    assert confusion["unseen"]["rows"] == ["cross"]
    assert np.array(confusion["unseen"]["counts"]).sum() == saved["counts"]["unseen"]


def test_int8_export_agrees_with_keras(toy_gestures):
    run, results = toy_gestures
    int8 = results["int8"]
    for key in ("known_accuracy", "unknown_to_na", "unseen_to_na"):
        assert abs(int8[key] - results[key]) <= 0.1, key


def test_a_set_without_na_crops_writes_strict_json(tmp_path, capsys):
    """No na/ folder: unknown_to_na has no crops to measure, so it is null, never NaN."""
    import shutil

    from conftest import write_shape_folders

    from handnet.gestures import train_gestures

    data, _ = write_shape_folders(tmp_path / "shapes", per_class=8)
    shutil.rmtree(data / "na")
    results = train_gestures(GestureConfig(data=str(data), input_side=32, backbone="small", width=8, epochs=1,
                                           group_size=2, export=False, out=str(tmp_path / "run")))
    assert results["unknown_to_na"] is None
    strict = json.loads((tmp_path / "run" / "results.json").read_text(),
                        parse_constant=lambda name: pytest.fail(f"results.json holds {name}"))
    assert strict["unknown_to_na"] is None and strict["at_article_threshold"]["unknown_to_na"] is None
    assert "unknown -> na -," in capsys.readouterr().out


def test_bad_crops_stop_training_before_the_run_folder_unless_skipped(tmp_path, capsys):
    """A zero-byte and a junk crop among good ones: named, exit 2, no run folder; with
    --skip-bad each is reported, listed in skipped.txt, and the rest trains."""
    from conftest import write_shape_folders

    import train

    data, _ = write_shape_folders(tmp_path / "shapes", per_class=8)
    gesture = sorted(p for p in data.iterdir() if p.is_dir() and p.name != "na")[0]
    (gesture / "zero.png").write_bytes(b"")
    (gesture / "junk.jpg").write_bytes(b"\xff\xd8 not a picture \xff\xd9")
    argv = ["gestures", "--data", str(data), "--backbone", "small", "--width", "8", "--input-side", "32",
            "--epochs", "1", "--group-size", "2", "--no-export"]
    assert train.main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "junk.jpg: unreadable image" in err and "--skip-bad" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    assert train.main([*argv, "--skip-bad", "--out", str(tmp_path / "skipping")]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "zero.png: empty file" in out
    listed = (tmp_path / "skipping" / "skipped.txt").read_text()
    assert "junk.jpg" in listed and "zero.png" in listed


def test_training_refuses_unseen_gestures_that_are_also_known(tmp_path):
    from conftest import write_shape_folders

    from handnet.gestures import train_gestures

    data, unseen = write_shape_folders(tmp_path / "shapes", per_class=4)
    (unseen / "disk").mkdir()
    (unseen / "disk" / "x.png").write_bytes((data / "disk" / "disk_000.png").read_bytes())
    with pytest.raises(ValueError, match="disk"):
        train_gestures(GestureConfig(data=str(data), input_side=32, backbone="small", width=8, epochs=1,
                                     out=str(tmp_path / "run")))
    assert not (tmp_path / "run" / "gestures.keras").exists()


def test_missing_or_empty_gesture_folders_raise_clear_errors(tmp_path):
    from handnet.gesture_data import load_gesture_folder

    with pytest.raises(DatasetError, match="no such folder"):
        load_gesture_folder(tmp_path / "nothing")
    (tmp_path / "only_na" / "na").mkdir(parents=True)
    (tmp_path / "only_na" / "na" / "a.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="no gesture folders"):
        load_gesture_folder(tmp_path / "only_na")


# ---------------------------------------------------------------------------------------------
# Runtime: the .tflite classifier in a frame, without TensorFlow


def test_runtime_classifier_names_shapes_in_a_frame(toy_gestures):
    from conftest import DISK_COLOUR

    from handnet.peaks import Detection
    from handnet.runtime import GestureClassifier

    run, _ = toy_gestures
    classifier = GestureClassifier(run / "gestures-int8.tflite")
    assert classifier.info.labels == ("disk", "square", "na") and classifier.info.na == "na"
    frame = np.random.default_rng(0).integers(0, 60, (120, 160, 3)).astype(np.uint8)
    import cv2

    cv2.circle(frame, (40, 60), 15, DISK_COLOUR, -1)
    cv2.rectangle(frame, (100, 48), (124, 72), DISK_COLOUR, -1)
    hands = [Detection(40, 60, 15, 0.9, "open"), Detection(112, 60, 15, 0.8, "open")]
    labelled = classifier.label(frame, hands)
    assert [h.gesture for h in labelled] == ["disk", "square"]
    assert all(0 < h.gesture_score <= 1 for h in labelled) and "gestures" in classifier.timings
    gesture = classifier.classify(frame, hands[0])
    assert set(gesture.scores) == {"disk", "square", "na"} and gesture.score == pytest.approx(gesture.scores["disk"])
    # A triangle, one of the shapes trained as unknown, comes out na.
    other = np.random.default_rng(1).integers(0, 60, (120, 160, 3)).astype(np.uint8)
    cv2.fillConvexPoly(other, np.array([[40, 45], [25, 72], [55, 72]], np.int32), DISK_COLOUR)
    assert classifier.classify(other, hands[0]).name == "na"
    # A threshold above every score turns every answer into na.
    never = GestureClassifier(run / "gestures-int8.tflite")
    never.score_threshold = 1.01  # past any score (the constructor takes thresholds inside (0, 1) only)
    assert never.classify(frame, hands[0]).name == "na"


def test_runtime_refuses_the_wrong_kind_of_model(toy_gestures, toy_run):
    from handnet.runtime import GestureClassifier, HandDetector

    run, _ = toy_gestures
    with pytest.raises(ValueError, match="gesture classifier, not a hand detector"):
        HandDetector(run / "gestures-int8.tflite")
    with pytest.raises(ValueError, match="hand detector, not a gesture classifier"):
        GestureClassifier(toy_run / "model-int8.tflite")


def test_train_gestures_cli_reports_bad_input_with_exit_2(tmp_path, capsys):
    import train

    assert train.main(["gestures", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]) == 2
    assert "no such folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        train.main(["gestures", "--loss", "softmax"])
    assert exit_info.value.code == 2


# ---------------------------------------------------------------------------------------------
# Starting from another run's features (--init-from)


def test_init_from_copies_every_layer_but_the_scores(toy_gestures):
    import keras

    from conftest import TOY_GESTURE_SIDE

    from handnet.gestures import build_gesture_model, init_from_model

    run, _ = toy_gestures
    source = keras.saving.load_model(run / "gestures.keras", compile=False)
    # Another gesture set: four gestures and na, another loss and input side; only the scores differ.
    model = build_gesture_model(GestureConfig(input_side=2 * TOY_GESTURE_SIDE, backbone="small", width=8, loss="ce"), 5)
    fresh_scores = model.get_layer("scores").get_weights()
    copied = init_from_model(model, run / "gestures.keras")
    with_weights = [layer.name for layer in model.layers if layer.weights and layer.name != "scores"]
    assert copied == with_weights and len(copied) == 12  # six conv + batch-norm blocks
    for name in copied:  # batch-norm statistics included
        for mine, theirs in zip(model.get_layer(name).get_weights(), source.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    for mine, before in zip(model.get_layer("scores").get_weights(), fresh_scores, strict=True):
        np.testing.assert_array_equal(mine, before)


def test_init_from_refuses_missing_and_incompatible_models(toy_gestures, toy_run):
    from handnet.gestures import build_gesture_model, init_from_model

    run, _ = toy_gestures
    model = build_gesture_model(GestureConfig(input_side=32, backbone="small", width=16), 3)
    with pytest.raises(ValueError, match="g_stem_conv.*same --width"):
        init_from_model(model, run / "gestures.keras")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        init_from_model(model, run / "missing.keras")
    with pytest.raises(ValueError, match="has no layer 'g_stem_conv'"):
        init_from_model(model, toy_run / "model.keras")  # a hand detector


def test_the_fast_backbone_starts_from_a_hand_detector(toy, toy_run):
    """--backbone fast --init-from a detector: its model.keras gives its layers as they are; its
    exported .tflite gives the same network once the folded batch-norms are unfolded."""
    import keras

    from handnet.gestures import build_gesture_model, init_from_model
    from handnet.model import build_model, load_init_weights

    _, toy_config, frames = toy
    config = GestureConfig(backbone="fast", input_side=32, stem_channels=toy_config.stem_channels)
    crops = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    backbone = [f"{block}_{part}" for block in ("stem", "s4", "s8_a", "s8_b", "s16_a", "s16_b", "s16_c")
                for part in ("conv", "bn")]

    model = build_gesture_model(config, 3)
    assert init_from_model(model, toy_run / "model.keras") == backbone
    detector = keras.saving.load_model(toy_run / "model.keras", compile=False)
    for name in backbone:
        pairs = zip(model.get_layer(name).get_weights(), detector.get_layer(name).get_weights(), strict=True)
        for mine, theirs in pairs:
            np.testing.assert_array_equal(mine, theirs)

    model = build_gesture_model(config, 3)
    assert init_from_model(model, toy_run / "model-int8.tflite", crops) == backbone
    unfolded = build_model(toy_config, flexible=True)
    load_init_weights(unfolded, str(toy_run / "model-int8.tflite"), np.stack(frames).astype(np.float32))
    features = lambda m: keras.ops.convert_to_numpy(  # noqa: E731
        keras.Model(m.input, m.get_layer("s16_c_relu").output)(crops, training=False))
    np.testing.assert_allclose(features(model), features(unfolded), rtol=1e-3, atol=1e-3)


def test_the_default_backbone_trains_from_the_shipped_detector_and_exports(tmp_path):
    """python train.py gestures --init-from models/handnet-fast-int8.tflite, end to end: the
    detector's layers (the default backbone) start from the shipped file, train, and export."""
    from conftest import ROOT, write_shape_folders

    import train
    from handnet.runtime import read_model_info

    data, _ = write_shape_folders(tmp_path / "shapes", per_class=8)
    shipped = ROOT / "models" / "handnet-fast-int8.tflite"
    argv = ["gestures", "--data", str(data), "--input-side", "32", "--epochs", "1", "--group-size", "2",
            "--init-from", str(shipped), "--out", str(tmp_path / "run")]
    assert train.main(argv) == 0
    config = GestureConfig.load(tmp_path / "run" / "config.json")
    assert config.backbone == "fast" and config.init_from == str(shipped)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {"known_accuracy", "unseen_to_na"} <= results["int8"].keys()
    assert read_model_info(tmp_path / "run" / "gestures-int8.tflite").input_size == (32, 32)


def test_a_detector_of_another_stem_width_is_refused_with_the_flag_to_pass(toy, toy_run):
    from handnet.gestures import build_gesture_model, init_from_model

    width = toy[1].stem_channels
    model = build_gesture_model(GestureConfig(backbone="fast", input_side=32, stem_channels=width + 8), 3)
    crops = np.zeros((4, 32, 32, 3), np.float32)
    for source in ("model.keras", "model-int8.tflite"):
        with pytest.raises(ValueError, match=f"has {width} channels, this network's {width + 8} .*--stem-channels {width}"):
            init_from_model(model, toy_run / source, crops)


def test_a_detector_starts_only_the_fast_backbone(toy_run):
    from handnet.gestures import build_gesture_model, init_from_model

    model = build_gesture_model(GestureConfig(input_side=32, backbone="small", width=8), 3)
    crops = np.zeros((4, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="--backbone fast"):
        init_from_model(model, toy_run / "model-int8.tflite", crops)
    with pytest.raises(ValueError, match="multiple of 16"):
        GestureConfig(backbone="fast", input_side=40)


def test_training_starts_from_the_given_model(toy_gestures, tmp_path):
    """Two epochs at a tenth of the learning rate keep what the source model knows; from scratch
    they reach far less (the toy classifier needs about 20)."""
    from conftest import TOY_GESTURE_SIDE, write_shape_folders

    from handnet.gestures import train_gestures

    source, _ = toy_gestures
    data, _ = write_shape_folders(tmp_path / "shapes", per_class=24, seed=3)
    settings = dict(data=str(data), input_side=TOY_GESTURE_SIDE, backbone="small", width=8, epochs=2, batch_size=16,
                    learning_rate=3e-4, group_size=4, export=False)
    tuned = train_gestures(GestureConfig(**settings, init_from=str(source / "gestures.keras"), out=str(tmp_path / "a")))
    scratch = train_gestures(GestureConfig(**settings, out=str(tmp_path / "b")))
    assert tuned["closed_set_accuracy"] >= 0.85
    assert scratch["closed_set_accuracy"] < tuned["closed_set_accuracy"] - 0.2
    assert GestureConfig.load(tmp_path / "a" / "config.json").init_from == str(source / "gestures.keras")


def test_training_from_an_incompatible_model_leaves_no_run_folder(toy_gestures, tmp_path):
    from conftest import write_shape_folders

    from handnet.gestures import train_gestures

    source, _ = toy_gestures
    data, _ = write_shape_folders(tmp_path / "shapes", per_class=4)
    with pytest.raises(ValueError, match="same --width"):
        train_gestures(GestureConfig(data=str(data), input_side=32, backbone="small", width=16, epochs=1, group_size=1,
                                     init_from=str(source / "gestures.keras"), out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_train_gestures_cli_names_a_missing_init_model_with_exit_2(tmp_path, capsys):
    from conftest import write_shape_folders

    import train

    data, _ = write_shape_folders(tmp_path / "shapes", per_class=4)
    argv = ["gestures", "--data", str(data), "--group-size", "1", "--init-from", str(tmp_path / "pre.keras"),
            "--out", str(tmp_path / "run")]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "pre.keras: model file not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
