import pytest

from handnet.config import Config, parse_labels


def test_parse_labels_default_override_and_wildcard():
    assert parse_labels("open=positive,other=ignore") == {"open": "positive", "other": "ignore"}
    assert parse_labels("hello=positive,*=ignore") == {"hello": "positive", "*": "ignore"}


@pytest.mark.parametrize("spec", ["hello", "hello=maybe", "other=ignore", "=positive"])
def test_parse_labels_rejects_bad_specs(spec):
    with pytest.raises(ValueError, match="--labels"):
        parse_labels(spec)


def test_config_round_trip(tmp_path):
    config = Config(preset="seed", data=["a", "b"], loss="tversky", fp_weight=0.2, out="runs/x")
    config.save(tmp_path / "config.json")
    loaded = Config.load(tmp_path / "config.json")
    assert loaded == config
    assert loaded.input_size == (240, 426)


def test_preset_defaults_and_output_size():
    assert Config().input_size == (240, 320)
    assert Config().output_size == (30, 40)
    assert Config(preset="seed").output_size == (30, 53)
    with pytest.raises(ValueError, match="unknown preset"):
        Config(preset="huge")


def test_data_paths_are_stored_as_strings(tmp_path):
    from pathlib import Path

    config = Config(data=[Path("datasets/mine")])
    assert config.data == ["datasets/mine"]
    config.save(tmp_path / "config.json")  # a Path would not serialise
    assert Config.load(tmp_path / "config.json").data == ["datasets/mine"]


def test_train_size_is_the_crop_within_the_input():
    assert Config().train_size == (240, 320)  # no crop: whole inputs
    assert Config(crop_size=(128, 192), augment=True).train_size == (128, 192)
    assert Config(input_size=(64, 96), crop_size=(128, 192), augment=True).train_size == (64, 96)
    assert Config().heatmap_size((128, 192)) == (16, 24)


def test_crops_need_no_augmentation_but_focus_needs_crops():
    assert Config(crop_size=(128, 160)).train_size == (128, 160)  # cut from the unaugmented input
    with pytest.raises(ValueError, match="focus_crops places crops around hands, so it needs crop_size"):
        Config(focus_crops=0.5)
    with pytest.raises(ValueError, match="crops_per_image must be a whole number of at least 1, got 0"):
        Config(crop_size=(128, 160), crops_per_image=0)


def test_focus_crops_must_be_a_share():
    with pytest.raises(ValueError, match="focus_crops must be a share between 0 and 1, got 1.5"):
        Config(focus_crops=1.5)


def test_a_config_saved_before_a_field_existed_loads_as_its_run_trained(tmp_path):
    import json

    raw = json.loads(Config(out="runs/old").to_json())
    del raw["aux_weight"]  # written before the every-hand head
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert Config.load(tmp_path / "config.json").aux_weight == 0.0  # so its checkpoint still fits
    assert Config().aux_weight == 1.0  # new runs train with the head
    del raw["stem_channels"]  # written while the fast preset's 1/4 stage had 24 channels
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert Config.load(tmp_path / "config.json").stem_channels == 24


def test_a_config_saved_before_distractors_were_annotated_keeps_them_background(tmp_path):
    """The synthetic set's faces and arms were unannotated background; an old run's mapping,
    '*' included, must not turn them into ignore regions (or fail on them) when it meets them."""
    import json

    raw = json.loads(Config(labels="open=positive,*=ignore").to_json())
    del raw["negative_weight"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    old = Config.load(tmp_path / "config.json")
    assert old.negative_weight == 0.0
    assert parse_labels(old.labels) == {"face": "negative", "arm": "negative", "open": "positive", "*": "ignore"}
    raw["labels"] = "open=positive,face=ignore"  # a mapping that names them itself keeps its say
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert parse_labels(Config.load(tmp_path / "config.json").labels)["face"] == "ignore"
    assert parse_labels(Config().labels) == {"open": "positive", "other": "ignore", "face": "negative", "arm": "negative"}


def test_training_heads_follow_their_weights_in_channel_order():
    """Targets, model and loss all read this one list, so a head can never be on in one and off
    in another, nor change places between y_true and y_pred."""
    from handnet.targets import HEAD_ROLES

    assert Config().training_heads == (("every_hand", 1.0, 1), ("openness", 1.0, 1), ("negatives", 1.0, 1),
                                       ("segment", 1.0, 3))
    assert Config(aux_weight=0.0, openness_weight=0.0, negative_weight=2.5, segment_weight=0.0).training_heads == (
        ("negatives", 2.5, 1),)
    assert Config(aux_weight=0.0, openness_weight=0.0, negative_weight=0.0, segment_weight=0.0).training_heads == ()
    # each heatmap head has its target; the segment head learns from masks
    assert set(HEAD_ROLES) | {"segment", "openness"} == {name for name, _, _ in Config().training_heads}
