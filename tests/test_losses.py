import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from handnet.config import Config
from handnet.losses import EPS, LOSSES, get_loss, training_loss

ALPHA, BETA = 2.0, 4.0


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0, 0.9, (2, 6, 7)).astype(np.float32) ** 3
    target[0, 2, 3] = target[1, 4, 1] = target[1, 0, 6] = 1.0
    weight = np.ones_like(target)
    weight[0, 0, :3] = 0
    pred = rng.uniform(0.01, 0.99, (2, 6, 7, 1)).astype(np.float32)
    return np.stack([target, weight], -1), pred


def reference(name, y_true, y_pred, config):
    """Slow, obvious per-pixel loops."""
    total, weights, num_pos = 0.0, 0.0, 0.0
    tp = fp = fn = 0.0
    for b, i, j in np.ndindex(y_true.shape[:3]):
        t, w = float(y_true[b, i, j, 0]), float(y_true[b, i, j, 1])
        p = min(max(float(y_pred[b, i, j, 0]), EPS), 1 - EPS)
        if name == "mse":
            total += w * (p - t) ** 2
        elif name in ("bce", "weighted_bce"):
            pw = config.pos_weight if name == "weighted_bce" else 1.0
            total += w * -(pw * t * np.log(p) + (1 - t) * np.log(1 - p))
        elif name == "focal":
            if t == 1.0:
                total += w * -np.log(p) * (1 - p) ** ALPHA
                num_pos += w
            else:
                total += w * -np.log(1 - p) * p**ALPHA * (1 - t) ** BETA
        elif name == "quality_focal":
            total += w * abs(t - p) ** 2 * -(t * np.log(p) + (1 - t) * np.log(1 - p))
            num_pos += w * (t == 1.0)
        tp += w * p * t
        fp += w * p * (1 - t)
        fn += w * (1 - p) * t
        weights += w
    if name in ("focal", "quality_focal"):
        return total / max(num_pos, 1)
    if name in ("dice", "tversky"):
        a, b = (0.5, 0.5) if name == "dice" else (config.fp_weight, config.fn_weight)
        return 1 - (tp + 1) / (tp + a * fp + b * fn + 1)
    return total / max(weights, 1)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_matches_numpy_reference(name):
    config = Config(loss=name, pos_weight=7.0, fp_weight=0.25, fn_weight=0.75)
    y_true, y_pred = _batch()
    got = float(get_loss(config)(tf.constant(y_true), tf.constant(y_pred)))
    np.testing.assert_allclose(got, reference(name, y_true, y_pred, config), rtol=1e-4)


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_get_exactly_zero_gradient(name):
    y_true, y_pred = _batch(1)
    y_true[0, 3, 3] = (1.0, 0.0)  # even an ignored positive peak
    pred = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        loss = get_loss(Config(loss=name))(tf.constant(y_true), pred)
    grad = tape.gradient(loss, pred).numpy()[..., 0]
    ignored = y_true[..., 1] == 0
    assert np.all(grad[ignored] == 0.0)
    assert np.all(np.isfinite(grad)) and np.abs(grad[~ignored]).max() > 0


def test_focal_is_normalised_by_positive_peaks_with_a_floor():
    y_true, y_pred = _batch(2)
    loss = get_loss(Config(loss="focal"))
    doubled = np.concatenate([y_true, y_true]), np.concatenate([y_pred, y_pred])
    np.testing.assert_allclose(float(loss(*doubled)), float(loss(y_true, y_pred)), rtol=1e-5)
    no_hands = np.zeros_like(y_true)
    no_hands[..., 1] = 1
    expected = -np.sum(np.log(1 - y_pred[..., 0]) * y_pred[..., 0] ** 2)  # divided by the floor of 1
    np.testing.assert_allclose(float(loss(no_hands, y_pred)), expected, rtol=1e-4)


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        get_loss(Config(loss="l1"))


def test_losses_train_a_model_through_keras():
    model = keras.Sequential([keras.Input((6, 7, 1)), keras.layers.Conv2D(1, 1, activation="sigmoid")])
    model.compile("adam", loss=get_loss(Config(loss="focal")))
    y_true, _ = _batch()
    history = model.fit(np.ones((2, 6, 7, 1), np.float32), y_true, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_every_hand_term_adds_the_weighted_focal_loss_of_channels_2_and_3():
    heat_true, heat_pred = _batch(3)
    hands_true, hands_pred = _batch(4)
    y_true = np.concatenate([heat_true, hands_true], -1)
    y_pred = np.concatenate([heat_pred, hands_pred], -1)
    config = Config(loss="mse", openness_weight=0.0, aux_weight=0.5, negative_weight=0.0, segment_weight=0.0)
    loss, (heatmap_loss,) = training_loss(config)
    expected = reference("mse", heat_true, heat_pred, config) + 0.5 * reference("focal", hands_true, hands_pred, config)
    np.testing.assert_allclose(float(loss(tf.constant(y_true), tf.constant(y_pred))), expected, rtol=1e-4)
    np.testing.assert_allclose(float(heatmap_loss(tf.constant(y_true), tf.constant(y_pred))),
                               reference("mse", heat_true, heat_pred, config), rtol=1e-4)
    plain, metrics = training_loss(Config(loss="mse", openness_weight=0.0, aux_weight=0.0, negative_weight=0.0, segment_weight=0.0))
    assert metrics == [] and float(plain(tf.constant(heat_true), tf.constant(heat_pred))) == pytest.approx(
        reference("mse", heat_true, heat_pred, config), rel=1e-4)


def test_negatives_term_follows_the_every_hand_term_with_its_own_weight():
    heat_true, heat_pred = _batch(3)
    hands_true, hands_pred = _batch(4)
    faces_true, faces_pred = _batch(5)
    y_true = np.concatenate([heat_true, hands_true, faces_true], -1)
    y_pred = np.concatenate([heat_pred, hands_pred, faces_pred], -1)
    config = Config(loss="mse", openness_weight=0.0, aux_weight=0.5, negative_weight=2.0, segment_weight=0.0)
    loss, _ = training_loss(config)
    expected = (reference("mse", heat_true, heat_pred, config) + 0.5 * reference("focal", hands_true, hands_pred, config)
                + 2.0 * reference("focal", faces_true, faces_pred, config))
    np.testing.assert_allclose(float(loss(tf.constant(y_true), tf.constant(y_pred))), expected, rtol=1e-4)
    # Without the every-hand head, the negatives take its place: channels 2-3 and y_pred channel 1.
    alone, _ = training_loss(Config(loss="mse", openness_weight=0.0, aux_weight=0.0, negative_weight=2.0, segment_weight=0.0))
    y_true, y_pred = np.concatenate([heat_true, faces_true], -1), np.concatenate([heat_pred, faces_pred], -1)
    expected = reference("mse", heat_true, heat_pred, config) + 2.0 * reference("focal", faces_true, faces_pred, config)
    np.testing.assert_allclose(float(alone(tf.constant(y_true), tf.constant(y_pred))), expected, rtol=1e-4)


def _coverage_batch(seed=0):
    """Shares of 3 roles per cell for 2 images, the second without a mask (weight 0)."""
    rng = np.random.default_rng(seed)
    shares = rng.uniform(0, 1, (2, 6, 7, 3)).astype(np.float32) * (rng.uniform(0, 1, (2, 6, 7, 1)) < 0.3)
    weight = np.ones((2, 6, 7, 1), np.float32)
    weight[1] = 0
    return np.concatenate([shares, weight], -1), rng.uniform(0.01, 0.99, (2, 6, 7, 3)).astype(np.float32)


def coverage_reference(y_true, y_pred):
    total = stuff = 0.0
    for b, i, j, k in np.ndindex(y_pred.shape):
        t, w, p = float(y_true[b, i, j, k]), float(y_true[b, i, j, 3]), float(y_pred[b, i, j, k])
        total += w * -(t * np.log(p) + (1 - t) * np.log(1 - p))
        stuff += w * t
    return total / max(stuff, 1.0)


def test_segment_term_is_the_coverage_bce_of_the_last_channels_with_its_weight():
    heat_true, heat_pred = _batch(3)
    hands_true, hands_pred = _batch(4)
    seg_true, seg_pred = _coverage_batch(5)
    config = Config(loss="mse", openness_weight=0.0, aux_weight=0.5, negative_weight=0.0, segment_weight=3.0)
    loss, _ = training_loss(config)
    y_true = np.concatenate([heat_true, hands_true, seg_true], -1)  # 2 + 2 + 4 channels
    y_pred = np.concatenate([heat_pred, hands_pred, seg_pred], -1)  # 1 + 1 + 3 channels
    expected = (reference("mse", heat_true, heat_pred, config) + 0.5 * reference("focal", hands_true, hands_pred, config)
                + 3.0 * coverage_reference(seg_true, seg_pred))
    np.testing.assert_allclose(float(loss(tf.constant(y_true), tf.constant(y_pred))), expected, rtol=1e-4)


def test_an_image_without_a_mask_gets_no_gradient_from_the_segment_term():
    from handnet.losses import coverage_bce

    seg_true, seg_pred = _coverage_batch(6)
    pred = tf.Variable(seg_pred)
    with tf.GradientTape() as tape:
        value = coverage_bce(tf.constant(seg_true), pred)
    grad = tape.gradient(value, pred).numpy()
    assert np.all(grad[1] == 0.0)  # the image whose weight is 0
    assert np.all(np.abs(grad[0]) > 0)


def test_openness_term_is_the_cross_entropy_inside_hands_with_its_weight():
    """The openness head learns with binary cross-entropy over the cells its weight keeps (inside
    hands), mean over them, times openness_weight, after the every-hand head's term."""
    from handnet.losses import bce, training_loss

    rng = np.random.default_rng(7)
    config = Config(loss="mse", aux_weight=0.5, openness_weight=2.0, negative_weight=0.0, segment_weight=0.0)
    y_true = rng.uniform(0, 1, (2, 4, 6, 6)).astype(np.float32)
    y_true[..., 5] = rng.integers(0, 2, (2, 4, 6))  # openness weight: inside hands or not
    y_pred = rng.uniform(0.05, 0.95, (2, 4, 6, 3)).astype(np.float32)
    loss, _ = training_loss(config)
    without, _ = training_loss(dataclasses.replace(config, openness_weight=0.0))
    target, weight, pred = y_true[..., 4], y_true[..., 5], y_pred[..., 2]
    cells = -(target * np.log(pred) + (1 - target) * np.log(1 - pred))
    expected = float(without(y_true[..., :4], y_pred[..., :2])) + 2.0 * (cells * weight).sum() / weight.sum()
    np.testing.assert_allclose(float(loss(y_true, y_pred)), expected, rtol=1e-4)
    np.testing.assert_allclose(float(bce(y_true[..., 4:6], y_pred[..., 2:3])), (cells * weight).sum() / weight.sum(), rtol=1e-4)


def test_distillation_adds_nothing_where_the_network_agrees_with_its_teacher():
    """with_distillation: the teacher's maps (the last three channels) are soft targets for the
    network's open, hand and openness maps; agreeing costs 0, and the term is the soft-target
    cross-entropy less the teacher's entropy, over the teacher's summed hand map."""
    config = Config(distill_from="teacher.keras", negative_weight=0, segment_weight=0)
    loss, _ = training_loss(config)
    plain, _ = training_loss(dataclasses.replace(config, distill_from=""))
    rng = np.random.default_rng(0)
    student = rng.uniform(0.05, 0.95, (2, 4, 5, 3)).astype(np.float32)  # open, every hand, openness
    y_true = np.zeros((2, 4, 5, 6), np.float32)
    y_true[..., 1::2] = 1.0  # weights on
    agreeing = np.concatenate([student, student], axis=-1)
    assert np.isclose(float(loss(y_true, agreeing)), float(plain(y_true, student)), rtol=1e-5)
    teacher = rng.uniform(0.05, 0.95, (2, 4, 5, 3)).astype(np.float32)

    def kl(t, p):
        return t * np.log(t / p) + (1 - t) * np.log((1 - t) / (1 - p))

    by_hand = (kl(teacher[..., 0], student[..., 0]).sum() + kl(teacher[..., 1], student[..., 1]).sum()
               + (teacher[..., 1] * kl(teacher[..., 2], student[..., 2])).sum()) / teacher[..., 1].sum()
    distilled = float(loss(y_true, np.concatenate([student, teacher], axis=-1))) - float(plain(y_true, student))
    assert np.isclose(distilled, by_hand, rtol=1e-4)
