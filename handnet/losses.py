"""Keras losses for sparse heatmaps that honour a per-pixel weight mask.

Every loss takes y_true: (B, H, W, 2) float32, channel 0 the target in [0, 1], channel 1 the
weight in {0, 1} (0 around ignore hands), and y_pred: (B, H, W, 1) float32 in [0, 1]. A pixel of
weight 0 contributes nothing and receives exactly zero gradient. training_loss adds a term for
each training head (Config.training_heads: focal for heatmap heads, coverage_bce for the segment
head) for the wider y_true they train on.

Each loss reduces over the whole batch itself and returns a scalar, because its paper normalises
by a batch-wide count (weighted pixels, or positive peaks for the focal loss) that Keras' own
per-sample averaging would get wrong; Keras passes a scalar loss through unchanged.
"""

from __future__ import annotations

from keras import ops

from handnet.config import Config

EPS = 1e-6  # keeps log(p) finite; CenterNet clamps its sigmoid the same way


def _unpack(y_true, y_pred):
    target = y_true[..., 0]
    weight = y_true[..., 1]
    pred = ops.clip(ops.cast(y_pred[..., 0], "float32"), EPS, 1 - EPS)
    return target, weight, pred


def _weighted_mean(values, weight):
    return ops.sum(values * weight) / ops.maximum(ops.sum(weight), 1.0)


def mse(y_true, y_pred):
    """The seed's baseline: mean squared error over weighted pixels."""
    target, weight, pred = _unpack(y_true, y_pred)
    return _weighted_mean(ops.square(pred - target), weight)


def bce(y_true, y_pred):
    """Binary cross-entropy against the soft target, mean over weighted pixels."""
    return weighted_bce(1.0)(y_true, y_pred)


def weighted_bce(pos_weight: float):
    """BCE whose positive term is multiplied by pos_weight, to offset how few hand pixels there are."""

    def weighted_bce(y_true, y_pred):
        target, weight, pred = _unpack(y_true, y_pred)
        values = -(pos_weight * target * ops.log(pred) + (1 - target) * ops.log(1 - pred))
        return _weighted_mean(values, weight)

    return weighted_bce


def focal(alpha: float = 2.0, beta: float = 4.0):
    """CornerNet / CenterNet penalty-reduced focal loss, divided by the number of positive peaks
    (target exactly 1) in the batch, with a floor of 1 for hand-free batches."""

    def focal(y_true, y_pred):
        target, weight, pred = _unpack(y_true, y_pred)
        positive = ops.cast(target >= 1.0, "float32")
        pos_loss = ops.log(pred) * ops.power(1 - pred, alpha) * positive
        neg_loss = ops.log(1 - pred) * ops.power(pred, alpha) * ops.power(1 - target, beta) * (1 - positive)
        num_pos = ops.sum(positive * weight)
        return -ops.sum((pos_loss + neg_loss) * weight) / ops.maximum(num_pos, 1.0)

    return focal


def quality_focal(beta: float = 2.0):
    """Quality focal loss (Generalized Focal Loss, Li et al. 2020): BCE against the soft target
    at every pixel, scaled by |target - pred|^beta, divided by the number of positive peaks.
    Unlike the CenterNet focal loss, every pixel of a hand's blob pulls its score towards the
    blob's value, so each hand gives many positive signals instead of one."""

    def quality_focal(y_true, y_pred):
        target, weight, pred = _unpack(y_true, y_pred)
        bce_values = -(target * ops.log(pred) + (1 - target) * ops.log(1 - pred))
        values = ops.power(ops.abs(target - pred), beta) * bce_values
        num_pos = ops.sum(ops.cast(target >= 1.0, "float32") * weight)
        return ops.sum(values * weight) / ops.maximum(num_pos, 1.0)

    return quality_focal


def tversky(fp_weight: float = 0.3, fn_weight: float = 0.7, smooth: float = 1.0):
    """1 - Tversky index over the batch; fp_weight = fn_weight = 0.5 is the Dice loss."""

    def tversky(y_true, y_pred):
        target, weight, pred = _unpack(y_true, y_pred)
        tp = ops.sum(weight * pred * target)
        fp = ops.sum(weight * pred * (1 - target))
        fn = ops.sum(weight * (1 - pred) * target)
        return 1 - (tp + smooth) / (tp + fp_weight * fp + fn_weight * fn + smooth)

    return tversky


LOSSES = ("mse", "bce", "weighted_bce", "focal", "quality_focal", "dice", "tversky")


def get_loss(config: Config):
    """The loss named by config.loss, with its parameters from the config."""
    factories = {
        "mse": lambda: mse,
        "bce": lambda: bce,
        "weighted_bce": lambda: weighted_bce(config.pos_weight),
        "focal": lambda: focal(),
        "quality_focal": lambda: quality_focal(),
        "dice": lambda: tversky(0.5, 0.5),
        "tversky": lambda: tversky(config.fp_weight, config.fn_weight),
    }
    if config.loss not in factories:
        raise ValueError(f"unknown loss '{config.loss}' (choose from {', '.join(LOSSES)})")
    return factories[config.loss]()


def coverage_bce(y_true, y_pred):
    """The segment head's loss: binary cross-entropy of each predicted share against the cell's
    share of each role, summed over cells and roles, divided by the summed target shares (a
    batch's amount of annotated stuff, as the focal loss divides by its hands), floor 1.
    y_true: (B, H, W, K + 1), the K shares then a weight (0 for images without a mask);
    y_pred: (B, H, W, K)."""
    target, weight = y_true[..., :-1], y_true[..., -1:]
    pred = ops.clip(ops.cast(y_pred, "float32"), EPS, 1 - EPS)
    values = -(target * ops.log(pred) + (1 - target) * ops.log(1 - pred))
    return ops.sum(values * weight) / ops.maximum(ops.sum(target * weight), 1.0)


def with_training_heads(loss, heads):
    """The loss of a network with training heads (handnet.model.with_training_heads): `loss` on
    the heatmap (y_true channels 0-1, y_pred channel 0) plus each head's loss times its weight.
    heads: Config.training_heads, (name, weight, outputs) in channel order; each head takes its
    `outputs` channels of y_pred, and those plus a weight channel of y_true, after the previous
    ones. Heatmap heads learn with the focal loss, the segment head with coverage_bce, the
    openness head with binary cross-entropy over the cells its weight keeps (inside hands)."""
    heatmap, head_focal = heatmap_part(loss), focal()

    def heatmap_and_heads(y_true, y_pred):
        total = heatmap(y_true, y_pred)
        true_at, pred_at = 2, 1
        for name, weight, outputs in heads:
            head_loss = {"segment": coverage_bce, "openness": bce}.get(name, head_focal)
            total = total + weight * head_loss(y_true[..., true_at : true_at + outputs + 1],
                                               y_pred[..., pred_at : pred_at + outputs])
            true_at, pred_at = true_at + outputs + 1, pred_at + outputs
        return total

    return heatmap_and_heads


def with_distillation(loss, config: Config):
    """`loss` on the network's own channels plus, times config.distill_weight, how far its three
    deployed maps are from the teacher's (the last three channels of y_pred, handnet.model.
    with_teacher): binary cross-entropy against the teacher's open and hand maps as soft targets,
    less the teacher's own entropy (0 where they agree), summed over cells and divided by the
    teacher's summed hand map (floor 1), as the focal loss divides by the hands; and on the
    openness map the same, weighted by the teacher's hand map (openness means something at hands)."""
    channel, at = 1, {}  # y_pred's channel of each training head (the heatmap is channel 0)
    for name, _, outputs in config.training_heads:
        at[name], channel = channel, channel + outputs
    student, hand_at, open_at = channel, at["every_hand"], at["openness"]

    def soft_bce(target, pred):
        pred = ops.clip(pred, EPS, 1 - EPS)
        target = ops.clip(target, EPS, 1 - EPS)
        return -(target * ops.log(pred) + (1 - target) * ops.log(1 - pred)) + (
            target * ops.log(target) + (1 - target) * ops.log(1 - target))

    def total(y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        own = loss(y_true, y_pred[..., :student])
        teacher = ops.stop_gradient(y_pred[..., student:])
        hands = teacher[..., 1:2]
        norm = ops.maximum(ops.sum(hands), 1.0)
        maps = soft_bce(teacher[..., 0:1], y_pred[..., 0:1]) + soft_bce(hands, y_pred[..., hand_at : hand_at + 1])
        openness = hands * soft_bce(teacher[..., 2:3], y_pred[..., open_at : open_at + 1])
        return own + config.distill_weight * (ops.sum(maps) + ops.sum(openness)) / norm

    return total


def heatmap_part(loss):
    """`loss` on the heatmap channels alone, logged as `heatmap_loss` beside the total, so runs
    with and without training heads compare on one figure."""

    def heatmap_loss(y_true, y_pred):
        return loss(y_true[..., :2], y_pred[..., :1])

    return heatmap_loss


def training_loss(config: Config):
    """(loss, metrics) that training compiles: get_loss alone, or with the training heads' terms."""
    loss = get_loss(config)
    if config.training_heads:
        loss, metrics = with_training_heads(loss, config.training_heads), [heatmap_part(loss)]
    else:
        metrics = []
    return (with_distillation(loss, config) if config.distill_from else loss), metrics
