from pathlib import Path

import keras
import numpy as np
import pytest

from handnet.config import Config
from handnet.model import VGG_LAYERS, build_model, copy_weights, describe_model, with_training_heads

SEED_SHAPES = ("(240,426,64) (240,426,64) (120,213,64) (120,213,128) (120,213,128) (60,106,128) "
               "(60,106,512) (60,106,512) (60,106,512) (30,53,512) (30,53,1)")


def test_seed_preset_is_exactly_the_seed_network():
    model = build_model(Config(preset="seed", hand_map=False))  # the hand map adds a head beside `heatmap`
    text = describe_model(model)
    assert text.splitlines()[-1] == "output shapes: " + SEED_SHAPES
    assert "every layer trains" in text
    names = [layer.name for layer in model.layers]
    assert names[2:] == ["block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2",
                         "block2_pool", "head_conv1", "head_conv2", "head_conv3", "head_pool", "heatmap"]


def test_fast_preset_output_and_range():
    model = build_model(Config(input_size=(64, 96)))
    out = model(np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype(np.float32))
    assert out.shape == (2, 8, 12, 3)  # open hands, every hand, openness
    assert 0 <= float(np.min(out)) and float(np.max(out)) <= 1
    with pytest.raises(ValueError, match="multiples of 16"):
        build_model(Config(input_size=(60, 90)))


def test_stem_channels_set_the_width_of_the_fast_quarter_scale_stage():
    from handnet.model import stem_channels_of

    assert stem_channels_of(build_model(Config(input_size=(64, 96)))) == Config().stem_channels
    model = build_model(Config(input_size=(64, 96), stem_channels=8))
    assert stem_channels_of(model) == 8
    assert model.get_layer("stem_conv").kernel.shape == (4, 4, 3, 8)
    assert model.get_layer("s4_conv").kernel.shape == (3, 3, 8, 8)
    assert model.get_layer("s8_a_conv").kernel.shape == (3, 3, 8, 64)
    assert model.output.shape[1:] == (8, 12, 3)
    assert stem_channels_of(build_model(Config(preset="seed", input_size=(32, 48)))) is None
    with pytest.raises(ValueError, match="stem_channels must be a whole number of at least 1"):
        Config(stem_channels=0)


def test_local_backbone_weights_load_by_name_and_freeze(tmp_path):
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    vgg.save_weights(path)
    model = build_model(Config(preset="seed", input_size=(32, 48), backbone_weights=str(path)))
    for name in VGG_LAYERS:
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0], vgg.get_layer(name).get_weights()[0])
        assert not model.get_layer(name).trainable
    assert model.get_layer("head_conv1").trainable
    assert "frozen (pretrained) layers: block1_conv1, block1_conv2, block2_conv1, block2_conv2" in describe_model(model)


def test_backbone_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_model(Config(preset="seed", input_size=(32, 48), backbone_weights=str(tmp_path / "x.h5")))
    with pytest.raises(ValueError, match="no VGG16 backbone"):
        build_model(Config(input_size=(64, 96), backbone_weights="imagenet"))


def test_saved_model_round_trip(tmp_path):
    model = build_model(Config(input_size=(64, 96)))
    x = np.random.default_rng(1).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


@pytest.mark.parametrize("preset", ["fast", "seed"])
def test_training_heads_train_beside_the_heatmap_and_come_off(preset, tmp_path):
    config = Config(preset=preset, input_size=(32, 48), hand_map=False)
    model = build_model(config)
    trained = with_training_heads(model, ["every_hand", "negatives"])
    x = np.random.default_rng(2).uniform(0, 255, (1, 32, 48, 3)).astype(np.float32)
    both = keras.ops.convert_to_numpy(trained(x))
    assert both.shape == (1, 4, 6, 3)
    assert with_training_heads(model, ["negatives"]).output.shape[-1] == 2
    assert with_training_heads(model, []) is model
    with pytest.raises(ValueError, match="unknown training heads"):
        with_training_heads(model, ["pose"])
    deployed = build_model(config)  # what train.py saves: the network rebuilt, the heads' weights left behind
    copy_weights(trained, deployed)
    assert deployed.name == model.name and deployed.output.shape[-1] == 1
    assert not {"every_hand", "negatives"} & {layer.name for layer in deployed.layers}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(deployed(x)), both[..., :1], atol=1e-6)
    deployed.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), both[..., :1], atol=1e-6)


@pytest.mark.parametrize("preset", ["fast", "seed"])
def test_the_hand_map_trains_as_its_heads_and_stays(preset, tmp_path):
    config = Config(preset=preset, input_size=(32, 48))
    assert config.deploys_hand_map and config.map_channels == ("open", "hand", "openness")
    model = build_model(config)
    assert model.output.shape[-1] == 3  # open hands, every hand, openness
    trained = with_training_heads(model, ["every_hand", "openness", "negatives"])
    # the training network's every_hand and openness channels are the model's own maps, not new heads
    names = [layer.name for layer in trained.layers]
    assert names.count("every_hand") == names.count("openness") == 1
    x = np.random.default_rng(3).uniform(0, 255, (1, 32, 48, 3)).astype(np.float32)
    both = keras.ops.convert_to_numpy(trained(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), both[..., :3], atol=1e-6)
    deployed = build_model(config, flexible=True)
    copied = copy_weights(trained, deployed)
    assert {"every_hand", "openness"} <= set(copied) and "negatives" not in copied
    np.testing.assert_allclose(keras.ops.convert_to_numpy(deployed(x)), both[..., :3], atol=1e-6)
    assert build_model(Config(preset=preset, input_size=(32, 48), openness_weight=0)).output.shape[-1] == 2
    assert build_model(Config(preset=preset, input_size=(32, 48), aux_weight=0)).output.shape[-1] == 1


def test_copy_weights_names_what_is_missing():
    old = build_model(Config(input_size=(32, 48), hand_map=False))
    new = build_model(Config(input_size=(32, 48)))
    with pytest.raises(ValueError, match="no weights for layer 'every_hand'"):
        copy_weights(old, new)
    before = new.get_layer("every_hand").get_weights()
    assert not {"every_hand", "openness"} & set(copy_weights(old, new, missing=("every_hand", "openness")))
    np.testing.assert_array_equal(new.get_layer("every_hand").get_weights()[0], before[0])
    np.testing.assert_array_equal(new.get_layer("stem_conv").get_weights()[0], old.get_layer("stem_conv").get_weights()[0])




PALM_LITE = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "palm_detection_lite.tflite"


def test_palm_preset_builds_and_trains_without_blazepalm_weights():
    model = build_model(Config(preset="palm"))  # 192 x 256 by default
    assert model.output_shape == (None, 24, 32, 3)
    assert all(layer.trainable for layer in model.layers)  # no weights loaded: nothing frozen
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model(Config(preset="palm", input_size=(200, 256)))


@pytest.mark.skipif(not PALM_LITE.is_file(), reason="needs ../shared/anchors/palm_detection_lite.tflite")
def test_palm_preset_computes_blazepalms_own_features_and_freezes_them(tmp_path):
    """Loaded from the .tflite, the preset's 1/8 features equal BlazePalm-lite's (the tensor its
    SSD score convolution reads) on a real frame: handnet's BGR 0-255 input, BlazePalm's RGB 0-1."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    from handnet.model import load_backbone_weights

    model = build_model(Config(preset="palm", input_size=(192, 192)))
    load_backbone_weights(model, str(PALM_LITE))
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"head_dw", "head_conv", "head_bn", "heatmap", "every_hand", "openness"}
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (192, 192, 3), dtype=np.uint8), (0, 0), 3)
    features = keras.Model(model.input, model.get_layer("palm_p8_b1_prelu").output)
    ours = np.asarray(features(frame[None].astype(np.float32)))
    interpreter = Interpreter(str(PALM_LITE), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], (frame[..., ::-1] / 255.0)[None].astype(np.float32))
    interpreter.invoke()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    score_conv = next(op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"
                      and tensors[op["outputs"][0]]["shape"][-1] == 2)
    theirs = interpreter.get_tensor(score_conv["inputs"][0])
    assert ours.shape == theirs.shape == (1, 24, 24, 128)
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()
    with pytest.raises(ValueError, match="weighted layers"):
        load_backbone_weights(build_model(Config(preset="palm")), str(PALM_LITE.with_name("palm_detection_full.tflite")))


def test_a_teacher_of_another_size_multiple_sees_a_padded_frame_on_the_same_cells():
    from handnet.model import with_teacher

    student = build_model(Config(), flexible=True)  # 240 x 320 -> 30 x 40 cells
    teacher = build_model(Config(stem_channels=8), flexible=True)
    joined = with_teacher(student, teacher, multiple=32)
    frame = np.random.default_rng(0).uniform(0, 255, (1, 240, 320, 3)).astype(np.float32)
    out = np.asarray(joined(frame))
    assert out.shape == (1, 30, 40, 6)
    padded = np.pad(frame, [[0, 0], [0, 16], [0, 0], [0, 0]])  # 256 rows: a multiple of 32
    np.testing.assert_allclose(out[..., 3:], np.asarray(teacher(padded))[:, :30], atol=1e-5)
    np.testing.assert_allclose(out[..., :3], np.asarray(student(frame)), atol=1e-5)
    assert not teacher.trainable and teacher.trainable_weights == []
