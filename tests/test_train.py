"""train.py and handnet.evaluate end to end, on tiny data."""

import json
from pathlib import Path

import pytest

import train
from conftest import write_native
from handnet import evaluate
from handnet.runtime import read_model_info

TINY = ["--input-size", "64", "96", "--batch-size", "4", "--epochs", "2", "--seed", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_synthetic):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert train.main(["--data", str(tiny_synthetic), "--out", str(out), *TINY]) == 0
    return out


def test_run_folder_holds_everything(tiny_run):
    for name in ("config.json", "model.keras", "metrics.json", "history.csv", "curves.png", "val_samples.png",
                 "model-int8.tflite"):
        assert (tiny_run / name).is_file(), name
    assert not (tiny_run / "prepared").exists()  # the examples read back while training
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["input_size"] == [64, 96] and config["preset"] == "fast" and config["epochs"] == 2
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert {"precision", "recall", "f1", "ap", "near", "far"} <= metrics.keys()
    assert len((tiny_run / "history.csv").read_text().splitlines()) == 3  # header + 2 epochs
    # The int8 deliverable is measured on the same images and describes itself.
    assert {"precision", "recall", "f1", "ap"} <= metrics["int8"].keys()
    info = read_model_info(tiny_run / "model-int8.tflite")
    assert info.mode == "int8" and info.input_size == (64, 96) and info.score_threshold == config["score_threshold"]


def test_the_negatives_and_segment_heads_train_only_where_their_annotations_are(tiny_run, tmp_path, native_dataset,
                                                                                capsys):
    trained = json.loads((tiny_run / "config.json").read_text())
    assert trained["negative_weight"] == 1.0 and trained["segment_weight"] == 1.0  # faces and arms; masks
    out = tmp_path / "no-negatives"
    assert train.main(["--data", str(native_dataset), "--out", str(out), "--val-fraction", "0", "--no-export",
                       *TINY[:-4], "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "no negatives among the training images" in printed and "no label masks among the training" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["negative_weight"] == 0.0 and config["segment_weight"] == 0.0


def test_no_export_skips_the_tflite(tmp_path, tiny_synthetic):
    out = tmp_path / "plain"
    assert train.main(["--data", str(tiny_synthetic), "--out", str(out), "--no-export", *TINY[:-4], "--epochs", "1"]) == 0
    assert (out / "model.keras").is_file() and not (out / "model-int8.tflite").exists()
    assert "int8" not in json.loads((out / "metrics.json").read_text())


def test_refuses_to_overwrite_a_trained_run(tiny_run, tiny_synthetic, capsys):
    assert train.main(["--data", str(tiny_synthetic), "--out", str(tiny_run), *TINY]) == 2
    assert "already holds a trained model" in capsys.readouterr().err


def test_evaluate_cli_prints_and_writes_metrics(tiny_run, tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert evaluate.main(["--model", str(tiny_run / "model.keras"), "--data", str(tiny_synthetic),
                          "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["images"] == 24
    assert "near" in capsys.readouterr().out


def test_evaluate_cli_takes_the_exported_tflite(tiny_run, tiny_synthetic, tmp_path):
    out = tmp_path / "int8.json"
    assert evaluate.main(["--model", str(tiny_run / "model-int8.tflite"), "--data", str(tiny_synthetic),
                          "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    saved = json.loads((tiny_run / "config.json").read_text())
    assert metrics["images"] == 24 and metrics["task"] == "open" and metrics["threshold"] == saved["open_threshold"]
    assert evaluate.main(["--model", str(tiny_run / "model-int8.tflite"), "--data", str(tiny_synthetic),
                          "--task", "every", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["threshold"] == saved["score_threshold"]


def test_the_threshold_is_tuned_on_validation_images_and_the_figures_cross_fitted(tmp_path, tiny_synthetic, capsys):
    from handnet.annotations import group_indices, load_samples, split_samples
    from handnet.config import Config
    from handnet.metrics import evaluate_matches, f1_interval

    out = tmp_path / "crossed"
    assert train.main(["--data", str(tiny_synthetic), "--out", str(out), "--val-fraction", "0.5", "--group-size", "2",
                       "--no-export", *TINY[:-4], "--epochs", "1"]) == 0
    assert "validation images); radius" in capsys.readouterr().out
    config, metrics = Config.load(out / "config.json"), json.loads((out / "metrics.json").read_text())
    assert metrics["threshold_tuned_on"] == "validation" and metrics["threshold"] == config.open_threshold
    assert metrics["every_hand"]["threshold"] == config.score_threshold
    # The same figures, worked out again from the saved model and the split's own rule.
    model, _ = evaluate.load_model(out / "model.keras")
    _, val = split_samples(load_samples([str(tiny_synthetic)], config.labels), config.val_fraction,
                           config.group_size, config.seed)
    # The every-hand map's threshold first, then the openness map's that labels best the hands it reports.
    assert config.map_channels == ("open", "hand", "openness")
    assert config.score_threshold == evaluate.best_threshold(evaluate.match_samples(model, val, config, task="every"))
    per_image = dict(zip((s.path for s in val), evaluate.match_samples(model, val, config)))
    found = {s.path: (s, frame.shape[:2], d) for s, frame, _, d in evaluate.predict_samples(model, val, config)}
    assert config.open_threshold == evaluate.label_threshold(list(found.values()), config)
    halves = split_samples(val, 0.5, config.group_size, config.seed)
    best = [evaluate.label_threshold([found[s.path] for s in half], config) for half in halves]
    assert metrics["half_thresholds"] == best
    crossed = evaluate_matches([per_image[s.path] for s in halves[0] + halves[1]], config.open_threshold,
                               [best[1]] * len(halves[0]) + [best[0]] * len(halves[1]))
    assert (metrics["f1"], metrics["recall"], metrics["ap"]) == pytest.approx((crossed["f1"], crossed["recall"], crossed["ap"]))
    # Its F1 interval resamples the validation split's groups, each image at its cross-fitted cut.
    first = {s.path for s in halves[0]}
    interval = f1_interval([per_image[s.path] for s in val], config.open_threshold, group_indices(val, config.group_size),
                           [best[1] if s.path in first else best[0] for s in val], seed=config.seed)
    assert metrics["f1_interval"] == pytest.approx(list(interval), abs=1e-4)
    assert metrics["f1_interval"][0] <= metrics["f1_interval"][1]


def test_tune_on_tunes_the_threshold_on_the_validation_images_of_those_folders_alone(tmp_path, tiny_synthetic, capsys):
    import shutil

    from handnet.annotations import load_samples, train_val_split
    from handnet.config import Config
    from handnet.training import _under

    # A second folder, "real photos": the same scenes with no declared split, so drawn by groups.
    native_dataset = tmp_path / "photos"
    shutil.copytree(tiny_synthetic, native_dataset, ignore=shutil.ignore_patterns("masks"))
    doc = json.loads((native_dataset / "hands.json").read_text())
    for entry in doc["images"]:
        entry.pop("split", None)
        entry.pop("mask", None)
    (native_dataset / "hands.json").write_text(json.dumps({"images": doc["images"]}))
    out = tmp_path / "tuned-on"
    data = [str(tiny_synthetic), str(native_dataset)]
    assert train.main(["--data", *data, "--tune-on", str(native_dataset), "--out", str(out), "--group-size", "2",
                       "--val-fraction", "0.5", "--no-export", *TINY[:-4], "--epochs", "1"]) == 0
    config, metrics = Config.load(out / "config.json"), json.loads((out / "metrics.json").read_text())
    _, val = train_val_split(load_samples(data, config.labels), config.val_fraction, config.group_size, config.seed)
    mine = [s for s in val if _under(s.path, str(native_dataset))]
    assert 0 < len(mine) < len(val)
    model, _ = evaluate.load_model(out / "model.keras")
    # every hand decides which hands are reported; the openness map's threshold labels them best
    assert config.score_threshold == evaluate.best_threshold(evaluate.match_samples(model, mine, config, task="every"))
    found = [(s, frame.shape[:2], d) for s, frame, _, d in evaluate.predict_samples(model, mine, config)]
    assert config.open_threshold == evaluate.label_threshold(found, config)
    assert f"{len(mine)} of the {len(val)} validation images ({native_dataset})" in capsys.readouterr().out
    assert metrics["threshold_folders"] == [str(native_dataset)] and metrics["images"] == len(val)
    with pytest.raises(ValueError, match="is not one of the data folders"):
        Config(data=[str(tiny_synthetic)], tune_on=[str(native_dataset)])


def test_tune_on_folders_without_hands_to_find_fall_back_to_all_images(tmp_path, tiny_synthetic, capsys):
    from handnet.annotations import load_samples, train_val_split
    from handnet.config import Config

    empty = write_native(tmp_path / "empty", {f"{k:02d}.jpg": [] for k in range(8)})  # no hands at all
    out = tmp_path / "fallback"
    data = [str(tiny_synthetic), str(empty)]
    assert train.main(["--data", *data, "--tune-on", str(empty), "--out", str(out), "--group-size", "2",
                       "--no-export", *TINY[:-4], "--epochs", "1"]) == 0
    assert "no hands to find among the" in capsys.readouterr().out
    config = Config.load(out / "config.json")
    _, val = train_val_split(load_samples(data, config.labels), config.val_fraction, config.group_size, config.seed)
    model, _ = evaluate.load_model(out / "model.keras")
    assert config.score_threshold == evaluate.best_threshold(evaluate.match_samples(model, val, config))


def test_epochs_validate_on_a_spread_of_the_validation_images_and_the_metrics_on_all(tmp_path, tiny_synthetic,
                                                                                      monkeypatch):
    from handnet import training

    validated = []
    make_dataset = training.make_dataset

    def recording(samples, config, training=True, **kwargs):
        if not training:
            validated.append(sorted(s.path for s in samples))
        return make_dataset(samples, config, training=training, **kwargs)

    monkeypatch.setattr(training, "make_dataset", recording)
    out = tmp_path / "spread"
    assert train.main(["--data", str(tiny_synthetic), "--out", str(out), "--val-fraction", "0.5", "--group-size", "2",
                       "--epoch-val-images", "3", "--no-export", *TINY[:-4], "--epochs", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 12  # half of the 24 scenes, every one scored at the end
    assert len(validated) == 1 and len(validated[0]) == 3  # the epochs' loss: 3 of them
    assert "val_heatmap_loss" in (out / "history.csv").read_text()


def test_several_datasets_get_figures_each(tmp_path, tiny_synthetic, native_dataset):
    out = tmp_path / "two"
    args = ["--data", str(tiny_synthetic), str(native_dataset), "--out", str(out), "--val-fraction", "0",
            "--data-repeats", "1", "3", "--epochs", "1", "--input-size", "64", "96", "--batch-size", "4"]
    assert train.main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluated_on"].startswith("training") and metrics["threshold_tuned_on"] == "training"
    per_dataset = metrics["per_dataset"]
    # Without a validation split the figures come from the training images, each counted once
    # however often it recurs in training.
    assert [per_dataset[str(d)]["images"] for d in (tiny_synthetic, native_dataset)] == [24, 3]


@pytest.mark.parametrize("case,message", [
    ("missing", "dataset folder not found"),
    ("label", "unknown label 'fist'"),
    ("radius", "negative radius"),
])
def test_bad_data_fails_in_one_line_and_writes_nothing(tmp_path, capsys, case, message):
    hands = {"label": [{"x": 5, "y": 5, "radius": 3, "label": "fist"}],
             "radius": [{"x": 5, "y": 5, "radius": -1, "label": "open"}]}.get(case, [])
    data = tmp_path / "missing" if case == "missing" else write_native(tmp_path / "d", {"a.jpg": hands})
    out = tmp_path / "run"
    assert train.main(["--data", str(data), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_dry_run_prints_the_seed_network(capsys):
    assert train.main(["--preset", "seed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("output shapes: (240,426,64) (240,426,64) (120,213,64) (120,213,128) (120,213,128) (60,106,128) "
            "(60,106,512) (60,106,512) (60,106,512) (30,53,512) (30,53,1)") in out


@pytest.mark.parametrize("augment", [["--augment"], []])
def test_bad_crop_size_is_a_clear_error(tiny_synthetic, tmp_path, capsys, augment):
    args = ["--data", str(tiny_synthetic), "--out", str(tmp_path / "run"), *augment, "--crop-size", "40", "90", *TINY]
    assert train.main(args) == 2
    assert "--crop-size 40 90: preset 'fast' needs both sides multiples of 16" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, message", [
    (["--preset", "tiny"], "unknown preset 'tiny'"),
    (["--focus-crops", "1.5"], "focus_crops must be a share between 0 and 1"),
    (["--focus-crops", "0.5"], "focus_crops places crops around hands, so it needs crop_size (or augment)"),
    (["--crop-size", "64", "96", "--crops-per-image", "0"], "crops_per_image must be a whole number of at least 1"),
    (["--data", "a", "b", "--data-repeats", "2"], "data_repeats [2] must give one whole number of at least 1 per data folder"),
    (["--data", "a", "--data-repeats", "0"], "data_repeats [0] must give one whole number of at least 1 per data folder"),
    (["--epoch-val-images", "-1"], "epoch_val_images must be 0 (all) or more, got -1"),
])
def test_bad_settings_are_one_line_errors(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main([*flags, "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"error: {message}" in last_line, last_line
    assert not (tmp_path / "run").exists()


def test_the_builtin_set_is_generated_when_named_beside_real_folders(tmp_path, native_dataset, monkeypatch, capsys):
    from handnet import training

    monkeypatch.setattr(training, "SYNTHETIC_DIR", tmp_path / "synthetic")
    out = tmp_path / "mixed"
    assert train.main(["--data", str(tmp_path / "synthetic"), str(native_dataset), "--synthetic-count", "12", "--group-size", "2",
                       "--data-repeats", "1", "3", "--out", str(out), "--no-export", *TINY[:-4], "--epochs", "1"]) == 0
    assert json.loads((out / "config.json").read_text())["data_repeats"] == [1, 3]
    printed = capsys.readouterr().out
    distinct = int(printed.split(" train, ")[0].split()[-1])
    per_epoch = int(printed.split(" training images per epoch with repeats")[0].split()[-1])
    assert per_epoch > distinct and (per_epoch - distinct) % 2 == 0  # each real training image twice more
    # Not the default run's set: generated beside it, under a name that says how it differs.
    builtin = tmp_path / "synthetic-n12-64x96"
    assert not (tmp_path / "synthetic").exists()
    index = json.loads((builtin / "hands.json").read_text())
    assert len(index["images"]) == 12 and index["generator"]["size"] == [64, 96]
    assert json.loads((out / "config.json").read_text())["data"] == [str(builtin), str(native_dataset)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_dataset"]) == {str(builtin), str(native_dataset)}


def test_training_on_crops_of_prepared_examples(tmp_path, tiny_synthetic, capsys):
    out = tmp_path / "crops"
    assert train.main(["--data", str(tiny_synthetic), "--crop-size", "32", "48", "--focus-crops", "0.5",
                       "--crops-per-image", "3", "--out", str(out), "--no-export", *TINY, "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    distinct = int(printed.split(" train, ")[0].split()[-1])
    assert f"{3 * distinct} training crops per epoch: 3 per image" in printed
    saved = json.loads((out / "config.json").read_text())
    assert saved["crop_size"] == [32, 48] and saved["crops_per_image"] == 3
    assert len((out / "history.csv").read_text().splitlines()) == 2  # a header and the one epoch
    metrics = json.loads((out / "metrics.json").read_text())  # evaluated on whole validation frames
    assert metrics["images"] == int(printed.split(" validation")[0].split()[-1]) and 0 <= metrics["f1"] <= 1


def test_each_setting_of_the_builtin_set_has_its_own_folder():
    from handnet.config import Config
    from handnet.training import synthetic_dir

    assert synthetic_dir(Config()) == Path("datasets/synthetic")
    assert synthetic_dir(Config(seed=1)) == Path("datasets/synthetic-seed1")
    assert synthetic_dir(Config(seed=2, synthetic_count=12000)) == Path("datasets/synthetic-seed2-n12000")
    assert synthetic_dir(Config(preset="seed")) == Path("datasets/synthetic-240x426")
    assert synthetic_dir(Config(input_size=(240, 320), epochs=3)) == Path("datasets/synthetic")  # other flags: same set
    assert synthetic_dir(Config(dense_scenes=False)) == Path("datasets/synthetic-plain")  # every scene a frame
    assert synthetic_dir(Config(val_fraction=0.1)) == Path("datasets/synthetic-val0.1")  # another declared split
    assert synthetic_dir(Config(val_fraction=0.1, dense_scenes=False)) == Path("datasets/synthetic-plain")


def test_data_repeats_list_a_folders_training_images_that_many_times(tmp_path):
    from handnet.annotations import Sample
    from handnet.training import repeat_by_folder

    real, synthetic = tmp_path / "real", tmp_path / "synthetic"
    samples = [Sample(str(synthetic / "a.jpg"), ()), Sample(str(real / "b.jpg"), ()), Sample(str(real / "c.jpg"), ())]
    repeated = repeat_by_folder(samples, [str(synthetic), str(real)], (1, 3))
    assert [Path(s.path).name for s in repeated] == ["a.jpg"] + ["b.jpg"] * 3 + ["c.jpg"] * 3


def test_init_starts_training_from_a_trained_model(tiny_run, tiny_synthetic, tmp_path):
    import keras
    import numpy as np

    out = tmp_path / "tuned"
    assert train.main(["--data", str(tiny_synthetic), "--out", str(out), "--init", str(tiny_run / "model.keras"),
                       "--learning-rate", "1e-9", "--no-export", *TINY[:-4], "--epochs", "1"]) == 0
    before = keras.saving.load_model(tiny_run / "model.keras", compile=False)
    after = keras.saving.load_model(out / "model.keras", compile=False)
    for name in ("stem_conv", "head_conv", "heatmap"):  # a vanishing learning rate leaves the kernels as they were
        np.testing.assert_allclose(after.get_layer(name).get_weights()[0], before.get_layer(name).get_weights()[0],
                                   atol=1e-6)
    assert json.loads((out / "config.json").read_text())["init"] == str(tiny_run / "model.keras")


def test_init_from_an_exported_file_fine_tunes_its_network(tiny_run, tiny_synthetic, tmp_path, capsys):
    """--init X.tflite (the shipped model, say): training starts from the file's network, its
    1/4 stage as wide as the file's whatever --stem-channels says."""
    import cv2
    import keras
    import numpy as np

    from handnet.config import Config
    from handnet.letterbox import apply_letterbox
    from handnet.runtime import HandDetector

    exported, out = tiny_run / "model-int8.tflite", tmp_path / "from-tflite"
    width = Config.load(tiny_run / "config.json").stem_channels
    assert train.main(["--data", str(tiny_synthetic), "--out", str(out), "--init", str(exported),
                       "--learning-rate", "1e-9", "--no-export", *TINY[:-4], "--epochs", "1",
                       "--stem-channels", str(width + 8)]) == 0
    assert f"its 1/4 stage has {width} channels" in capsys.readouterr().out
    assert Config.load(out / "config.json").stem_channels == width
    tuned = keras.saving.load_model(out / "model.keras", compile=False)
    detector = HandDetector(exported, num_threads=1)
    for image in sorted(Path(tiny_synthetic).glob("*.jpg"))[:4]:
        frame = cv2.imread(str(image))
        keras_map = keras.ops.convert_to_numpy(tuned(apply_letterbox(frame, (64, 96))[0][None].astype(np.float32)))
        assert np.abs(keras_map[0] - detector.heatmap(frame)[0]).max() <= 0.08  # int8's tolerance


def test_init_from_a_missing_or_foreign_model_is_a_clear_error(tmp_path, tiny_synthetic, capsys):
    import keras

    assert train.main(["--data", str(tiny_synthetic), "--out", str(tmp_path / "a"), "--init", str(tmp_path / "no.keras"),
                       *TINY]) == 2
    assert "--init: no such file" in capsys.readouterr().err and not (tmp_path / "a").exists()
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="not_handnet")
    other.save(tmp_path / "other.keras")
    from handnet.config import Config
    from handnet.model import build_model, load_init_weights

    with pytest.raises(ValueError, match="holds 'not_handnet', not 'handnet_fast'"):
        load_init_weights(build_model(Config(input_size=(64, 96))), str(tmp_path / "other.keras"))


def test_a_recipe_file_sets_the_flags_and_flags_beside_it_win(tmp_path, capsys):
    import json

    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"epochs": 0, "stem_channels": 8}))
    with pytest.raises(SystemExit) as stop:  # the recipe's epochs reach the config
        train.main(["--config", str(recipe), "--dry-run"])
    assert stop.value.code == 2 and "epochs must be" in capsys.readouterr().err
    assert train.main(["--config", str(recipe), "--epochs", "1", "--dry-run"]) == 0
    assert "stem_conv" in capsys.readouterr().out
    recipe.write_text(json.dumps({"epoch": 3}))
    with pytest.raises(SystemExit):
        train.main(["--config", str(recipe), "--dry-run"])
    assert "unknown field(s) epoch" in capsys.readouterr().err
    shipped = json.loads((Path(train.__file__).parent / "configs" / "handnet-fast-int8.json").read_text())
    assert train.read_recipe(str(Path(train.__file__).parent / "configs" / "handnet-fast-int8.json"), None) == shipped
