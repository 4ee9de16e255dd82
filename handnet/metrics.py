"""Detection metrics with a centre-distance match rule, and open-set gesture metrics. NumPy only.

A detection is a true positive when its centre lies within `match_distance` radii of a positive
hand's centre not matched yet (radii floored at MIN_MATCH_PX, so far hands stay matchable);
detections are matched greedily, highest score first. A detection that matches nothing but lies
on an ignore hand is neither right nor wrong, and ignore hands are never missed. Figures are split
by size: a hand is `far` when its radius is under FAR_FRACTION of the frame's shorter side.
"""

from __future__ import annotations

import math

import numpy as np

MIN_MATCH_PX = 8.0
FAR_FRACTION = 1 / 12  # radius 20 px in a 240-line frame, 40 px in a 480-line one
SIZES = ("near", "far")


def size_of(radius: float, frame_hw) -> str:
    return "far" if radius < FAR_FRACTION * min(frame_hw) else "near"


def reach(hand, match_distance: float = 1.0) -> float:
    """How far from a hand's centre a detection may lie and still be that hand, in frame pixels."""
    return match_distance * max(hand.radius, MIN_MATCH_PX)


def nearest_within_reach(hand, detections, match_distance: float = 1.0):
    """The detection nearest to a hand's centre among those within its reach, or None."""
    distance = lambda d: math.hypot(d.x - hand.x, d.y - hand.y)  # noqa: E731
    return min((d for d in detections if distance(d) <= reach(hand, match_distance)), key=distance, default=None)


MATCH_RULES = ("radius", "box")


def within(det, hand, match_distance: float = 1.0, rule: str = "radius") -> bool:
    """Whether a detection's centre is that hand: within reach of its centre (`radius`), or inside
    its annotated box (`box`, the rule of issue 43's benchmark; hands without a box fall back to
    `radius`)."""
    if rule == "box" and hand.box:
        x0, y0, x1, y1 = hand.box
        return x0 <= det.x <= x1 and y0 <= det.y <= y1
    return math.hypot(det.x - hand.x, det.y - hand.y) <= reach(hand, match_distance)


def match_image(detections, hands, frame_hw, match_distance: float = 1.0, rule: str = "radius"):
    """Match one image. Returns (counted, truths):
    counted: [(score, is_true_positive, size)] for detections that count;
    truths: [(size, matched_score or None)] for every positive hand.
    rule: MATCH_RULES, which detections can be a hand (within); the nearest centre wins."""
    positives = [h for h in hands if h.role == "positive"]
    ignores = [h for h in hands if h.role == "ignore"]
    matched: dict[int, float] = {}
    counted = []

    for det in sorted(detections, key=lambda d: -d.score):
        best, best_dist = None, math.inf
        for k, hand in enumerate(positives):
            dist = math.hypot(det.x - hand.x, det.y - hand.y)
            if k not in matched and within(det, hand, match_distance, rule) and dist < best_dist:
                best, best_dist = k, dist
        if best is not None:
            matched[best] = det.score
            counted.append((det.score, True, size_of(positives[best].radius, frame_hw)))
        elif not any(within(det, h, match_distance, rule) for h in ignores):
            counted.append((det.score, False, size_of(det.radius, frame_hw)))
    truths = [(size_of(h.radius, frame_hw), matched.get(k)) for k, h in enumerate(positives)]
    return counted, truths


def average_precision(scores, is_tp, num_truths: int) -> float:
    """Area under the precision envelope (VOC all-points); 0 when there are no hands."""
    if num_truths == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    tp = np.asarray(is_tp, np.float64)[order]
    recall = np.concatenate([[0.0], np.cumsum(tp) / num_truths])
    precision = np.concatenate([[1.0], np.cumsum(tp) / np.arange(1, len(tp) + 1)])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * envelope[1:]))


def summarise(counted, truths) -> dict:
    """Precision, recall, F1 at each entry's own threshold, and AP over every score: counted
    [(score, is_true_positive, size, threshold)], truths [(size, matched_score or None, threshold)].
    Without positive hands recall, F1 and AP are None, and precision too unless something was
    detected (then it is 0)."""
    above = [tp for s, tp, _, t in counted if s >= t]
    tp = sum(above)
    fp = len(above) - tp
    hits = sum(1 for _, score, t in truths if score is not None and score >= t)
    if not truths:  # nothing to find: only the false positives say anything
        return {"precision": None if not above else 0.0, "recall": None, "f1": None, "ap": None,
                "hands": 0, "true_positives": 0, "false_positives": fp}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = hits / len(truths)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ap = average_precision([c[0] for c in counted], [c[1] for c in counted], len(truths))
    return {"precision": precision, "recall": recall, "f1": f1, "ap": ap,
            "hands": len(truths), "true_positives": tp, "false_positives": fp}


def evaluate_matches(per_image, threshold: float, cuts=None) -> dict:
    """per_image: [(counted, truths)] from match_image. Overall figures plus near and far ones, at
    `threshold`, or with cuts (one threshold per image) each image at its own: cross-fitted
    figures (evaluate.cross_fit_cuts). AP does not depend on either."""
    cuts = [threshold] * len(per_image) if cuts is None else cuts
    if len(cuts) != len(per_image):
        raise ValueError(f"{len(cuts)} thresholds for {len(per_image)} images")
    counted = [(*c, t) for (cs, _), t in zip(per_image, cuts) for c in cs]
    truths = [(*h, t) for (_, ts), t in zip(per_image, cuts) for h in ts]
    result = {"threshold": threshold, "images": len(per_image), **summarise(counted, truths)}
    for size in SIZES:
        result[size] = summarise([c for c in counted if c[2] == size], [t for t in truths if t[0] == size])
    return result


def f1_interval(per_image, threshold: float, groups, cuts=None, rounds: int = 1000, level: float = 0.95,
                seed: int = 0):
    """A bootstrap interval for F1: (low, high) over `rounds` resamplings of whole groups of
    images with replacement, so near-duplicate frames move together; None with fewer than two
    groups. per_image, threshold and cuts as for evaluate_matches; groups: each image's group
    (any hashable, e.g. an index into annotations.sample_groups)."""
    cuts = [threshold] * len(per_image) if cuts is None else cuts
    at = {name: k for k, name in enumerate(dict.fromkeys(groups))}
    if len(at) < 2:
        return None
    sums = np.zeros((len(at), 4))  # per group: true positives, false positives, hits, hands
    for (counted, truths), cut, group in zip(per_image, cuts, groups, strict=True):
        sums[at[group]] += (sum(1 for score, tp, _ in counted if tp and score >= cut),
                            sum(1 for score, tp, _ in counted if not tp and score >= cut),
                            sum(1 for _, score in truths if score is not None and score >= cut),
                            len(truths))
    picks = np.random.default_rng(seed).integers(0, len(at), (rounds, len(at)))
    tp, fp, hits, total = sums[picks].sum(axis=1).T
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(total > 0, hits / total, np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = f1[~np.isnan(recall)]
    if not len(f1):
        return None
    tail = (1 - level) / 2 * 100
    return float(np.percentile(f1, tail)), float(np.percentile(f1, 100 - tail))


# ---------------------------------------------------------------------------------------------
# Open-set gesture metrics. Scores are (N, K + 1): K known gestures, then na. Every loss is read
# the same way (decide_gestures), so the figures of ce, bce and bce_na compare like for like.


def decide_gestures(scores: np.ndarray, threshold: float) -> np.ndarray:
    """(N, K + 1) scores -> (N,) class indices; K (na) where the top score is under threshold."""
    scores = np.asarray(scores, np.float32).reshape(len(scores), -1)
    picked = scores.argmax(axis=1)
    picked[scores.max(axis=1) < threshold] = scores.shape[1] - 1
    return picked


def thresholded_accuracy(truth: np.ndarray, scores: np.ndarray, threshold: float = 0.4) -> float:
    """The share of examples whose thresholded decision is their class (na examples: index K)."""
    truth = np.asarray(truth)
    return float(np.mean(decide_gestures(scores, threshold) == truth)) if len(truth) else float("nan")


def confusion_matrix(truth, predicted, rows: int, columns: int) -> np.ndarray:
    """(rows, columns) int counts: truth index down, predicted index across."""
    matrix = np.zeros((rows, columns), np.int64)
    np.add.at(matrix, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def gesture_figures(truth, predicted, known: int) -> dict:
    """known_accuracy (known examples given their own gesture), unknown_to_na (na examples
    given na), balanced_accuracy (mean recall over the K gestures and na), thresholded_accuracy."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    is_known = truth < known
    recalls = [np.mean(predicted[truth == c] == c) for c in range(known + 1) if np.any(truth == c)]
    return {
        "known_accuracy": _share(predicted[is_known] == truth[is_known]),
        "unknown_to_na": _share(predicted[~is_known] == known),
        "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        "thresholded_accuracy": _share(predicted == truth),
    }


# 0.05 steps, then 0.01 steps up to 0.99: trained networks score known crops near 1 (softmax above
# all), and a grid that stopped at 0.95 held many runs at its top. No higher: the int8 file's
# scores come in steps of 1/256 up to 255/256 = 0.996, so 0.99 still leaves it two of them.
GESTURE_THRESHOLD_GRID = np.round(np.concatenate([np.arange(0.05, 0.951, 0.05), [0.96, 0.97, 0.98, 0.99]]), 2)


def choose_gesture_threshold(truth, scores, known: int, known_drop: float = 0.02) -> float:
    """The highest threshold on GESTURE_THRESHOLD_GRID whose known-gesture accuracy stays within
    `known_drop` of the best any threshold reaches: say na as readily as the known gestures can
    afford. (Maximising accuracy on the validation crops instead picks low thresholds whenever the
    trained unknowns are easy to tell apart, and gestures never seen then pass as known ones.)"""
    grid = GESTURE_THRESHOLD_GRID
    accuracy = [gesture_figures(truth, decide_gestures(scores, t), known)["known_accuracy"] for t in grid]
    if all(np.isnan(accuracy)):
        return 0.5
    best = np.nanmax(accuracy)
    return float(max(t for t, a in zip(grid, accuracy) if a >= best - known_drop - 1e-12))


def open_set_figures(truth, scores, unseen_scores, known: int) -> dict:
    """Figures that need no threshold, so losses compare without one. The known-ness of an image
    is its top score over the K known gestures (na's own output left out, so every loss is read
    alike). closed_set_accuracy: known examples whose top known gesture is theirs;
    unseen_auroc / unknown_auroc: the chance that a known validation example is more known-like
    than an unseen / a trained-unknown one (ties count half), None without either side."""
    truth = np.asarray(truth)
    scores = np.asarray(scores, np.float32).reshape(len(truth), -1)[:, :known]
    is_known = truth < known
    knownness = scores.max(axis=1, initial=0)
    unseen = np.asarray(unseen_scores, np.float32).reshape(-1, known + 1)[:, :known].max(axis=1, initial=0)
    return {
        "closed_set_accuracy": _share(scores[is_known].argmax(axis=1) == truth[is_known]),
        "unseen_auroc": auroc(knownness[is_known], unseen),
        "unknown_auroc": auroc(knownness[is_known], knownness[~is_known]),
    }


def unseen_to_na_at(truth, scores, unseen_scores, known: int, levels) -> np.ndarray:
    """For each known-accuracy level q in `levels`: the largest share of unseen examples that
    any threshold sends to na (decide_gestures) while keeping the known examples' accuracy on
    (truth, scores) at q or more; NaN where no threshold keeps q. Read at matched known accuracy,
    losses compare without the noise of each one's own threshold choice. Exact: every distinct top
    score is tried as the threshold, and one above them all."""
    truth = np.asarray(truth)
    scores = np.asarray(scores, np.float32).reshape(len(truth), -1)
    unseen = np.asarray(unseen_scores, np.float32).reshape(-1, known + 1)
    is_known = truth < known
    right = scores[is_known].argmax(axis=1) == truth[is_known]  # right when not sent to na
    known_top, unseen_top = scores[is_known].max(axis=1), unseen.max(axis=1)
    thresholds = np.append(np.unique(np.concatenate([known_top, unseen_top])), np.inf)[:, None]
    accuracy = (right & (known_top >= thresholds)).mean(axis=1) if is_known.any() else np.full(len(thresholds), np.nan)
    to_na = ((unseen.argmax(axis=1) == known) | (unseen_top < thresholds)).mean(axis=1) if len(unseen) else None
    out = np.full(len(levels), np.nan)
    for k, level in enumerate(levels):
        kept = accuracy >= level - 1e-12
        if to_na is not None and kept.any():
            out[k] = to_na[kept].max()
    return out


# Student's t, two-sided 95%: T_975[df] for df = 1 ... 30; beyond, a Cornish-Fisher expansion.
T_975 = (None, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052,
         2.048, 2.045, 2.042)


def t_975(df: int) -> float:
    """The 97.5th percentile of Student's t with df degrees of freedom (to 3 decimals)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df < len(T_975):
        return T_975[df]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def paired_difference(reference, other) -> dict:
    """other - reference, pair by pair (each pair: two models trained on one seed's split): the
    mean difference, its 95% Student-t interval (low, high; None under two pairs), and on how many
    pairs `other` is ahead and behind. Pairs where either value is missing (None or NaN) are left
    out; `pairs` says how many were used."""
    a = np.array([np.nan if v is None else v for v in reference], np.float64)
    b = np.array([np.nan if v is None else v for v in other], np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired figures need as many values on each side, got {len(a)} and {len(b)}")
    difference = (b - a)[~np.isnan(a) & ~np.isnan(b)]
    n = len(difference)
    mean = float(difference.mean()) if n else None
    low = high = None
    if n >= 2:
        half = t_975(n - 1) * float(difference.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"mean": mean, "low": low, "high": high, "ahead": int((difference > 0).sum()),
            "behind": int((difference < 0).sum()), "pairs": n}


def auroc(positive, negative) -> float | None:
    """Area under the ROC curve: P(a positive scores above a negative), ties counted half."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if not len(positive) or not len(negative):
        return None
    above = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return float(above / (len(positive) * len(negative)))


def _share(hits: np.ndarray) -> float:
    return float(np.mean(hits)) if len(hits) else float("nan")
