"""handnet.export and handnet.runtime: every mode agrees with Keras, the file describes itself,
the runtime needs no TensorFlow, and bad files or frames get clear errors."""

import dataclasses
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

from conftest import ROOT, TOY_SIZE as SIZE
from handnet.export import convert, embed_metadata, export_model, fixed_size_model, model_metadata
from handnet.peaks import detect_hands
from handnet.letterbox import apply_letterbox
from handnet.runtime import HandDetector, read_model_info
# Largest heatmap difference allowed against Keras fp32, per mode (heatmap values are in [0, 1]).
TOLERANCE = {"fp32": 1e-4, "fp16": 0.02, "dynamic": 0.08, "int8": 0.08}
SIZE_OUT = (SIZE[0] // 8, SIZE[1] // 8)


def keras_heatmap(model, frame):
    """(Ho, Wo, 2): the open-hand and every-hand maps of the toy model."""
    return keras.ops.convert_to_numpy(model(frame[None].astype(np.float32), training=False))[0]


@pytest.fixture(scope="module")
def exported(toy, tmp_path_factory):
    model, config, frames = toy
    folder = tmp_path_factory.mktemp("tflite")
    calibration = [f.astype(np.float32) for f in frames]
    return {mode: export_model(model, config, mode, folder / f"{mode}.tflite", frames=calibration)
            for mode in TOLERANCE}


def test_the_toy_model_has_learned_peaks(toy):
    model, config, frames = toy
    assert max(keras_heatmap(model, f).max() for f in frames) > 0.7


@pytest.mark.parametrize("mode", list(TOLERANCE))
def test_every_mode_agrees_with_keras(toy, exported, mode):
    model, config, frames = toy
    detector = HandDetector(exported[mode], num_threads=1)
    assert detector.info.mode == mode
    for frame in frames:
        expected = keras_heatmap(model, frame)
        heatmap, _ = detector.heatmap(frame)
        assert heatmap.shape == expected.shape
        assert np.abs(heatmap - expected).max() <= TOLERANCE[mode], mode
        # Quantized heatmaps must keep their peaks, not only their argmax.
        assert heatmap.max() == pytest.approx(expected.max(), abs=TOLERANCE[mode])
        box = apply_letterbox(frame, SIZE)[1]
        want = detect_hands(expected, box, "open", config.score_threshold, config.stride,
                            config.sigma_scale, config.min_sigma, (), config.open_threshold)
        got = detector.detect(frame)
        assert len(got) == len(want), mode
        for a, b in zip(sorted(got, key=lambda d: d.x), sorted(want, key=lambda d: d.x)):
            assert abs(a.x - b.x) <= 2 and abs(a.y - b.y) <= 2 and abs(a.score - b.score) <= TOLERANCE[mode]
            assert abs(a.open_score - b.open_score) <= TOLERANCE[mode] and a.label == b.label == "open"


def test_the_file_carries_both_maps_and_labels_hands_open_or_other(toy, exported):
    _, config, frames = toy
    detector = HandDetector(exported["int8"])
    assert detector.info.hand_map and detector.info.channels == ("open", "hand")
    assert detector.info.labels == ("open", "other") and detector.open_threshold == config.open_threshold
    hands = [h for f in frames for h in detector.detect(f)]
    assert hands and all(h.label == "open" for h in hands)  # every toy disk is an open hand
    # An open map that never reaches the threshold makes the same hands `other`, found as before.
    strict = HandDetector(exported["int8"], open_threshold=0.5)
    strict.open_threshold = 1.01  # past any map value (the constructor takes thresholds inside (0, 1) only)
    others = [h for f in frames for h in strict.detect(f)]
    assert [(h.x, h.y, h.score) for h in others] == [(h.x, h.y, h.score) for h in hands]
    assert all(h.label == "other" for h in others)


def test_a_file_without_a_hand_map_behaves_as_before(toy, tmp_path):
    """Files exported before the hand map keep loading: one channel, every hand labelled by the
    model's one label, open_score its score."""
    model, config, frames = toy
    old_config = dataclasses.replace(config, hand_map=False)
    one_map = keras.Model(model.input, model.get_layer("heatmap").output)
    path = export_model(one_map, old_config, "fp32", tmp_path / "old.tflite")
    detector = HandDetector(path)
    assert not detector.info.hand_map and detector.info.labels == ("open",)
    for frame in frames:
        heatmap, box = detector.heatmap(frame)
        assert heatmap.shape == SIZE_OUT
        np.testing.assert_allclose(heatmap, keras_heatmap(model, frame)[..., 0], atol=TOLERANCE["fp32"])
        want = detect_hands(heatmap, box, "open", config.score_threshold, config.stride, config.sigma_scale,
                            config.min_sigma)
        assert detector.detect(frame) == want
        assert all(h.open_score == h.score and h.label == "open" for h in want)


@pytest.mark.parametrize("mode", list(TOLERANCE))
def test_an_exported_file_starts_a_model_that_computes_what_it_did(toy, exported, mode):
    """train.py --init X.tflite: the converter folded every batch-norm into its convolution, and
    load_init_weights unfolds them, so fine-tuning starts from the file's network."""
    from handnet.model import build_model, load_init_weights

    _, config, frames = toy
    batch = np.stack(frames).astype(np.float32)
    model = build_model(config)
    load_init_weights(model, str(exported[mode]), batch)
    detector = HandDetector(exported[mode], num_threads=1)
    for frame in frames:
        assert np.abs(keras_heatmap(model, frame) - detector.heatmap(frame)[0]).max() <= TOLERANCE[mode], mode
    # In training mode each batch-norm normalises with the batch's own statistics; on the frames
    # it was unfolded on, those are the ones it stores, so training starts from the same outputs.
    training = keras.ops.convert_to_numpy(model(batch, training=True))
    np.testing.assert_allclose(training, keras.ops.convert_to_numpy(model(batch, training=False)), atol=1e-3)


def test_init_from_a_file_of_another_kind_is_a_clear_error(toy, exported):
    from handnet.model import build_model, load_init_weights

    _, config, frames = toy
    with pytest.raises(ValueError, match="training frames are needed"):
        load_init_weights(build_model(config), str(exported["int8"]))
    narrow = dataclasses.replace(config, stem_channels=config.stem_channels // 2)
    with pytest.raises(ValueError, match=f"1/4 stage has {config.stem_channels} channels.*--stem-channels"):
        load_init_weights(build_model(narrow), str(exported["int8"]), np.stack(frames).astype(np.float32))
    seed = dataclasses.replace(config, preset="seed", input_size=(64, 64))
    with pytest.raises(ValueError, match="holds the 'fast' preset, not 'seed'"):
        load_init_weights(build_model(seed), str(exported["int8"]), np.stack(frames).astype(np.float32))


def test_a_run_started_from_a_network_builds_its_stem_width(toy, toy_run, exported, tmp_path, capsys):
    """--init / --init-from: the 1/4 stage is as wide as the file's network, whatever the config said."""
    from handnet.config import GestureConfig
    from handnet.model import adopt_stem_channels, stem_channels_in

    _, config, _ = toy
    width = config.stem_channels
    assert stem_channels_in(str(exported["int8"])) == stem_channels_in(str(toy_run / "model.keras")) == width
    assert stem_channels_in("any.weights.h5") is None  # weights alone do not say
    for settings, path in ((dataclasses.replace(config, stem_channels=width + 8), exported["int8"]),
                           (GestureConfig(backbone="fast", stem_channels=width + 8), toy_run / "model.keras")):
        adopt_stem_channels(settings, str(path), "--init")
        assert settings.stem_channels == width
        assert f"--init {path}: its 1/4 stage has {width} channels" in capsys.readouterr().out
    broken = tmp_path / "broken.keras"
    broken.write_text("not a zip")
    with pytest.raises(ValueError, match="broken.keras: cannot read a network from it"):
        stem_channels_in(str(broken))


def test_weights_of_a_type_handnet_cannot_read_are_a_clear_error(exported, monkeypatch):
    import handnet.export

    monkeypatch.setattr(handnet.export, "TENSOR_DTYPES", {0: np.float32})  # as if int8 were unknown
    with pytest.raises(ValueError, match="stored as TFLite tensor type 9, which handnet cannot read"):
        handnet.export.read_conv_weights(exported["int8"])


def test_radius_knots_travel_in_the_file_and_scale_its_radii(toy, exported, tmp_path):
    model, config, frames = toy
    calibrated = dataclasses.replace(config, radius_knots=[[1.0, 100.0], [1.5, 1.5]])
    path = export_model(model, calibrated, "fp32", tmp_path / "calibrated.tflite")
    assert HandDetector(path).info.radius_knots == ((1.0, 100.0), (1.5, 1.5))
    assert HandDetector(exported["fp32"]).info.radius_knots == ()
    for frame in frames:
        plain, scaled = HandDetector(exported["fp32"]).detect(frame), HandDetector(path).detect(frame)
        assert [d.x for d in scaled] == [d.x for d in plain]
        assert [d.radius for d in scaled] == pytest.approx([1.5 * d.radius for d in plain])


def test_embedding_metadata_again_replaces_the_record_in_place(toy, exported, tmp_path):
    _, config, frames = toy
    once = exported["fp32"].read_bytes()
    record = dict(read_model_info(once).raw, score_threshold=0.75)
    twice = tmp_path / "twice.tflite"
    twice.write_bytes(embed_metadata(once, record))
    assert read_model_info(twice).score_threshold == 0.75
    assert abs(twice.stat().st_size - len(once)) < 64  # the old record's buffer is reused, not left behind
    same = HandDetector(twice).heatmap(frames[0])[0], HandDetector(exported["fp32"]).heatmap(frames[0])[0]
    np.testing.assert_array_equal(*same)


def test_int8_takes_uint8_pixels_and_is_smaller(exported):
    int8, fp32 = HandDetector(exported["int8"]), HandDetector(exported["fp32"])
    assert int8.input_dtype == np.uint8 and fp32.input_dtype == np.float32
    assert exported["int8"].stat().st_size < 0.5 * exported["fp32"].stat().st_size


def test_the_file_describes_itself(toy, exported):
    _, config, _ = toy
    info = read_model_info(exported["int8"])
    assert info.input_size == SIZE and info.stride == config.stride and info.preset == "fast"
    assert info.labels == ("open", "other") and info.score_threshold == 0.5 and info.mode == "int8"
    assert info.raw["output"]["channels"] == ["open", "hand"] and info.open_threshold == config.open_threshold
    assert info.raw["input"]["color"] == "BGR" and info.raw["config"]["input_size"] == list(SIZE)


def test_frames_of_any_size_come_back_in_their_own_pixels(toy, exported):
    model, config, frames = toy
    detector = HandDetector(exported["fp32"])
    frame = frames[0]
    small = detector.detect(frame)
    assert small, "the toy frame should hold a detected disk"
    big = detector.detect(cv2.resize(frame, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))
    assert len(big) == len(small)
    for a, b in zip(sorted(big, key=lambda d: d.x), sorted(small, key=lambda d: d.x)):
        assert abs(a.x - 2 * b.x) <= 3 and abs(a.y - 2 * b.y) <= 3


def test_threads_and_threshold_options(exported):
    assert HandDetector(exported["int8"], num_threads=2, score_threshold=0.99).score_threshold == 0.99
    assert HandDetector(exported["int8"]).score_threshold == 0.5


def test_runtime_imports_neither_tensorflow_nor_keras():
    code = ("import sys, handnet.runtime; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_files_get_clear_errors(toy, tmp_path):
    model, config, frames = toy
    with pytest.raises(FileNotFoundError, match="not found"):
        HandDetector(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a model at all")
    with pytest.raises(ValueError, match="not a TFLite model"):
        HandDetector(junk)
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(convert(fixed_size_model(model, config), "fp32"))
    with pytest.raises(ValueError, match="no handnet metadata"):
        HandDetector(bare)


@pytest.mark.parametrize("frame, message", [
    ([[0, 0, 0]], "numpy array"),
    (np.zeros((10, 10), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((10, 10, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((10, 10, 3), np.float32), "uint8"),
])
def test_bad_frames_get_clear_errors(exported, frame, message):
    with pytest.raises((TypeError, ValueError), match=message):
        HandDetector(exported["int8"]).detect(frame)


def test_unknown_mode_is_refused(toy, tmp_path):
    model, config, _ = toy
    with pytest.raises(ValueError, match="unknown mode"):
        export_model(model, config, "int4", tmp_path / "x.tflite")
    assert not list(tmp_path.iterdir())


def test_qat_fine_tunes_and_exports_int8(toy, tmp_path):
    from handnet.qat import quantization_aware_finetune, tf_keras_twin

    model, config, frames = toy
    twin = tf_keras_twin(model, config)
    # The tf_keras twin is the same network: same heatmap before any fine-tuning.
    np.testing.assert_allclose(twin(frames[0][None].astype(np.float32), training=False).numpy()[0],
                               keras_heatmap(model, frames[0]), atol=1e-4)
    quantized = quantization_aware_finetune(model, config, epochs=1, steps=4, progress=False)
    tuned = {w.name: w.numpy() for w in quantized.weights}
    kernel = next(v for name, v in tuned.items() if "head_conv" in name and "kernel" in name)
    assert not np.allclose(kernel, twin.get_layer("head_conv").get_weights()[0]), "QAT must really train"

    # The int8 file computes what the fine-tuned fake-quantized network computes.
    path = tmp_path / "qat.tflite"
    path.write_bytes(embed_metadata(convert(quantized, "qat", [f.astype(np.float32) for f in frames]),
                                    model_metadata(config, "qat", "open")))
    detector = HandDetector(path)
    assert detector.info.mode == "qat" and detector.input_dtype == np.uint8
    for frame in frames:
        expected = quantized(frame[None].astype(np.float32), training=False).numpy()[0]
        assert np.abs(detector.heatmap(frame)[0] - expected).max() <= 0.05


def test_export_model_writes_a_qat_file(toy, tmp_path):
    model, config, frames = toy
    path = export_model(model, config, "qat", tmp_path / "qat.tflite", frames=[f.astype(np.float32) for f in frames])
    assert read_model_info(path).mode == "qat"


def test_a_file_with_the_openness_map_carries_three_channels(toy, tmp_path):
    from handnet.model import build_model

    _, config, frames = toy
    three = dataclasses.replace(config, openness_weight=1.0)
    model = build_model(three)  # untrained: the file computes what the network computes
    detector = HandDetector(export_model(model, three, "fp32", tmp_path / "three.tflite"))
    assert detector.info.channels == ("open", "hand", "openness")
    for frame in frames:
        heatmap, _ = detector.heatmap(frame)
        assert heatmap.shape == (*SIZE_OUT, 3)
        np.testing.assert_allclose(heatmap, keras_heatmap(model, frame), atol=TOLERANCE["fp32"])
    found = [h for f in frames for h in HandDetector(detector.path, score_threshold=1e-6).detect(f)]
    assert found and all(h.label == ("open" if h.open_score >= detector.open_threshold else "other") for h in found)
