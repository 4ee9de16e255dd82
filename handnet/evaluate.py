"""Evaluate a trained Keras model on a dataset folder: precision, recall, F1, AP, near and far.

    python -m handnet.evaluate --model runs/fast/model.keras --data datasets/synthetic
    python -m handnet.evaluate --model runs/fast/model-int8.tflite --data datasets/synthetic
    python -m handnet.evaluate --model runs/hands/model.keras --data ../shared/datasets/roboflow-hands --labels hand=positive --out metrics.json
    python -m handnet.evaluate --model runs/fast/model.keras --data datasets/mine --worst 20

--worst N also writes the N images with the most mistakes (false positives plus missed hands at
the score threshold) as an overlay grid, worst-<data>.png, and lists them in worst-<data>.txt,
which `python -m handnet.annotate DIR --files worst-<data>.txt` opens for correction. The
figures carry `f1_interval`, a 95% bootstrap interval for F1 that resamples runs of --group-size
consecutive files (near-duplicate frames), so a few dozen frames show how little they settle.
--split val on the folders the model trained on scores only the images its run held back.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import cv2
import keras
import numpy as np

from handnet.annotations import (SPLITS, DatasetError, Sample, group_indices, load_samples, read_image,
                                 train_val_split)
from handnet.atomic import check_output_file, refuse_inputs_as_outputs, write_text
from handnet.config import Config, parse_labels
from handnet.letterbox import apply_letterbox, fit_letterbox
from handnet.metrics import evaluate_matches, f1_interval, match_image, nearest_within_reach
from handnet.model import read_keras_model
from handnet.peaks import detect_hands
from handnet.runtime import check_threshold

AP_THRESHOLD = 0.05  # detections down to this score feed the precision-recall curve
RADIUS_BINS = 6  # groups of matched hands, by detected radius, that fit_radius_knots measures


def detection_label(config: Config) -> str:
    """What the heatmap finds: the first label mapped to positive (e.g. 'open', 'hello')."""
    return next(name for name, role in parse_labels(config.labels).items() if role == "positive")


def predict_samples(model, samples: list[Sample], config: Config, batch_size: int = 8, progress=False):
    """Yields (sample, frame, heatmap (Ho, Wo), or (Ho, Wo, C) with a hand map (Config.map_channels),
    detections down to AP_THRESHOLD in frame pixels)."""
    label = detection_label(config)
    chunks = range(0, len(samples), batch_size)
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        chunks = tqdm(chunks, desc="evaluate", unit="batch", file=sys.stdout,
                      mininterval=0.5 if sys.stdout.isatty() else 15)
    for start in chunks:
        batch = samples[start : start + batch_size]
        frames = [read_image(s.path) for s in batch]
        boxed = [apply_letterbox(f, config.input_size) for f in frames]
        inputs = np.stack([image for image, _ in boxed]).astype(np.float32)
        heatmaps = keras.ops.convert_to_numpy(model(inputs, training=False))
        heatmaps = heatmaps if config.deploys_hand_map else heatmaps[..., 0]
        for sample, frame, (_, box), heatmap in zip(batch, frames, boxed, heatmaps):
            yield sample, frame, heatmap, heatmap_detections(heatmap, box, config, label)


def heatmap_detections(heatmap, box, config: Config, label: str | None = None) -> list:
    """Detections of one heatmap down to AP_THRESHOLD, in the frame's pixels (box: its letterbox),
    radii calibrated by config.radius_knots."""
    return detect_hands(heatmap, box, label or detection_label(config), AP_THRESHOLD, config.stride,
                        config.sigma_scale, config.min_sigma, config.radius_knots, config.open_threshold)


# The two things a detector is scored on: `open`, the open hands (the labels' positive hands; ignore
# hands are ambiguous), and `every`, every hand (positive and ignore hands alike are to be found).
TASKS = ("open", "every")


def task_threshold(config: Config, task: str) -> float:
    """The threshold a task's detection scores are cut at: the every-hand map's score_threshold,
    or for open hands with a hand map, its open_threshold."""
    return config.open_threshold if task == "open" and config.deploys_hand_map else config.score_threshold


def task_hands(hands, task: str) -> list:
    """The annotated hands as a task counts them: for `every`, ignore hands become hands to find."""
    if task == "open":
        return list(hands)
    return [dataclasses.replace(h, role="positive") if h.role == "ignore" else h for h in hands]


def task_detections(detections, task: str, hand_threshold: float) -> list:
    """What a task scores of a detector's hands: for `open`, those the detector reports
    (score >= hand_threshold) ranked by how open they look (Detection.openness); a detector with
    one map gives hand_threshold 0 (its score is its openness)."""
    if task == "every":
        return list(detections)
    return [dataclasses.replace(d, score=d.openness) for d in detections if d.score >= hand_threshold]


def task_view(sample: Sample, detections, task: str, config: Config) -> tuple[Sample, list]:
    """(the sample with its hands as the task counts them, the detections the task scores) for a
    detector under `config` (which tells whether it has a hand map, and its score_threshold)."""
    floor = config.score_threshold if config.deploys_hand_map else 0.0
    return (dataclasses.replace(sample, hands=tuple(task_hands(sample.hands, task))),
            task_detections(detections, task, floor))


def match_task(detections, sample: Sample, frame_hw, task: str, config: Config):
    """match_image of one image for a task, by config's match rule and thresholds."""
    sample, detections = task_view(sample, detections, task, config)
    return match_image(detections, sample.hands, frame_hw, config.match_distance)


def match_samples(model, samples: list[Sample], config: Config, progress=False, task: str = "open") -> list:
    """match_image results of a task (TASKS) for every sample, detections down to AP_THRESHOLD."""
    return [match_task(detections, sample, frame.shape[:2], task, config)
            for sample, frame, _, detections in predict_samples(model, samples, config, progress=progress)]


def match_samples_tflite(path, samples: list[Sample], config: Config, num_threads: int | None = None,
                         tasks=("open",)) -> list | dict:
    """match_samples for an exported .tflite, run through handnet.runtime (as a game runs it): the
    open task's results, or with several tasks {task: results}."""
    found = list(detect_samples_tflite(path, samples, num_threads))
    results = {task: [match_task(d, sample, frame.shape[:2], task, config) for sample, frame, d in found]
               for task in tasks}
    return results[tasks[0]] if len(tasks) == 1 else results


def detect_samples_tflite(path, samples: list[Sample], num_threads: int | None = None):
    """Yields (sample, frame, detections down to AP_THRESHOLD) from a .tflite via handnet.runtime."""
    from handnet.runtime import HandDetector  # noqa: PLC0415

    detector = HandDetector(path, num_threads=num_threads, score_threshold=AP_THRESHOLD)
    for sample in samples:
        frame = read_image(sample.path)
        yield sample, frame, detector.detect(frame)


def mistakes(detections, sample: Sample, frame_hw, threshold: float, match_distance: float) -> tuple[int, int]:
    """(false positives, missed hands) of one image at `threshold`, by the metrics' match rule."""
    counted, truths = match_image([d for d in detections if d.score >= threshold], sample.hands, frame_hw,
                                  match_distance)
    return sum(1 for _, tp, _ in counted if not tp), sum(1 for _, score in truths if score is None)


def save_worst(found: list, threshold: float, config: Config, count: int, png: Path, listing: Path) -> int:
    """found: [(sample, detections)]. Writes the `count` images with the most mistakes as a grid
    (annotated hands thin, detections above the threshold thick, mistakes named on each tile)
    and their paths, one per line. Returns how many images had any mistake to show."""
    from handnet.draw import draw_hands, save_grid  # noqa: PLC0415

    scored = []
    for sample, detections in found:
        shape = (sample.height, sample.width) if sample.height else read_image(sample.path).shape[:2]
        fp, missed = mistakes(detections, sample, shape, threshold, config.match_distance)
        if fp + missed:
            scored.append((fp + missed, fp, missed, sample, detections))
    scored.sort(key=lambda item: -item[0])  # stable: ties keep file order
    worst = scored[:count]
    write_text(listing, "".join(f"{item[3].path}\n" for item in worst))
    if not worst:
        return 0
    tiles = []
    for _, fp, missed, sample, detections in worst:
        drawn = draw_hands(read_image(sample.path), sample.hands, [d for d in detections if d.score >= threshold])
        tile, _ = apply_letterbox(drawn, (240, 320))
        cv2.rectangle(tile, (0, 222), (320, 240), (0, 0, 0), -1)
        cv2.putText(tile, f"{Path(sample.path).name[:28]}: {fp} FP, {missed} missed", (4, 235),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    columns = min(4, len(tiles))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    save_grid(png, [tiles[i : i + columns] for i in range(0, len(tiles), columns)],
              captions=(f"worst {len(worst)} at threshold {threshold:g}: green: hands to find, orange: ignored, magenta: detections",))
    return len(worst)


def evaluate_model(model, samples: list[Sample], config: Config, threshold: float | None = None,
                   progress=False, task: str = "open") -> dict:
    threshold = task_threshold(config, task) if threshold is None else threshold
    return evaluate_matches(match_samples(model, samples, config, progress, task), threshold)


THRESHOLD_GRID = np.round(np.arange(AP_THRESHOLD, 0.95, 0.05), 2)  # from the lowest score detections keep


def best_threshold(per_image: list, grid=THRESHOLD_GRID) -> float:
    """The score threshold of `grid` (ascending) with the highest F1; ties go to the higher."""
    f1 = [evaluate_matches(per_image, float(t))["f1"] or 0.0 for t in grid]
    return float(grid[len(grid) - 1 - int(np.argmax(f1[::-1]))])


def cross_fit_cuts(per_image: list, first: list[bool], tuned: list[bool] | None = None
                   ) -> tuple[list[float], tuple[float, float]]:
    """Two-fold cross-fitting of the score threshold. first: whether each image is in the first
    fold; tuned: whether each image may tune it (default: all). Returns (for each image the best
    threshold on the other fold's tuning images, the two folds' best thresholds). Figures with
    these cuts (evaluate_matches(..., cuts=)) are honest about held-out images although the
    threshold a model keeps is tuned on all of them."""
    return cross_fit(lambda keep: best_threshold([m for m, k in zip(per_image, keep) if k]), first, tuned)


def cross_fit(pick, first: list[bool], tuned: list[bool] | None = None) -> tuple[list[float], tuple[float, float]]:
    """cross_fit_cuts for any way of picking a threshold: pick([keep image?]) -> threshold."""
    tuned = [True] * len(first) if tuned is None else tuned
    best = {side: pick([f == side and t for f, t in zip(first, tuned)]) for side in (True, False)}
    return [best[not f] for f in first], (best[True], best[False])


def label_threshold(found, config: Config, keep: list[bool] | None = None, grid=THRESHOLD_GRID) -> float:
    """The open threshold that labels best the hands reported at config.score_threshold: the one
    of `grid` with the highest mean of the share of open hands labelled open and the share of
    other hands labelled other (ties to the higher). found: [(sample, frame (H, W), detections)];
    keep: which of them count (default all). Each annotated hand takes the nearest reported
    detection within reach. Without both kinds of hand found, config.open_threshold."""
    pairs = []
    for (sample, _, detections), kept in zip(found, keep or [True] * len(found)):
        shown = [d for d in detections if d.score >= config.score_threshold] if kept else []
        for hand in (h for h in sample.hands if h.role in ("positive", "ignore")):
            best = nearest_within_reach(hand, shown, config.match_distance)
            if best is not None:
                pairs.append((best.openness, hand.role == "positive"))
    scores, is_open = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs], bool)
    if not is_open.any() or is_open.all():
        return config.open_threshold
    balanced = [(np.mean(scores[is_open] >= t) + np.mean(scores[~is_open] < t)) / 2 for t in grid]
    return float(grid[len(grid) - 1 - int(np.argmax(balanced[::-1]))])


def fit_radius_knots(found, config: Config, bins: int = RADIUS_BINS) -> list[list[float]]:
    """Knots for peaks.calibrate_radius. found: [(sample, frame (H, W), detections)] with
    uncalibrated radii (predict_samples under a config without knots). Over the positive hands
    that a detection at config.score_threshold matches (the nearest within reach), the median
    ratio of annotated to detected radius in `bins` groups of equal count by detected radius
    (network-input pixels). [] when fewer than 10 hands per group match."""
    pairs = []
    task = "every" if config.deploys_hand_map else "open"  # the map that the peaks, so the radii, come from
    for sample, frame_hw, detections in found:
        box = fit_letterbox(frame_hw, config.input_size)
        shown = [d for d in detections if d.score >= config.score_threshold]
        for hand in (h for h in task_hands(sample.hands, task) if h.role == "positive"):
            best = nearest_within_reach(hand, shown, config.match_distance)
            if best is not None:
                pairs.append((best.radius * math.sqrt(box.scale_x * box.scale_y), hand.radius / best.radius))
    if len(pairs) < 10 * bins:
        return []
    ratios_at: dict[float, list] = {}  # groups at the radius floor (min_sigma) share one knot
    for group in np.array_split(np.array(sorted(pairs)), bins):
        ratios_at.setdefault(round(float(np.median(group[:, 0])), 3), []).append(group[:, 1])
    radii = sorted(ratios_at)
    return [radii, [round(float(np.median(np.concatenate(ratios_at[r]))), 4) for r in radii]]


def format_metrics(metrics: dict) -> str:
    lines = [f"{'':6} {'P':>6} {'R':>6} {'F1':>6} {'AP':>6} {'hands':>6}"]
    for name, m in (("all", metrics), ("near", metrics["near"]), ("far", metrics["far"])):
        figures = " ".join("     -" if m[k] is None else f"{m[k]:6.3f}" for k in ("precision", "recall", "f1", "ap"))
        lines.append(f"{name:6} {figures} {m['hands']:6d}")
    halves = metrics.get("half_thresholds")
    crossed = f"; cross-fitted: each half of them at the other half's best, {halves[0]:g} / {halves[1]:g}" if halves else ""
    lines.append(f"(score threshold {metrics['threshold']:g}, {metrics['images']} images{crossed})")
    if metrics.get("f1_interval"):
        low, high = metrics["f1_interval"]
        lines.append(f"(F1 95% bootstrap interval {low:.3f}-{high:.3f}, resampling groups of consecutive files)")
    return "\n".join(lines)


def same_folders(data: list[str], trained_on: list[str] | None) -> bool:
    """Whether the folders `data` are the ones a model trained on (config.data), in its order."""
    return bool(trained_on) and [Path(d).resolve() for d in data] == [Path(d).resolve() for d in trained_on]


def split_side(samples: list[Sample], side: str, config: Config | None) -> list[Sample]:
    """The samples on one side of a split: the model's own train / validation split as train.py
    drew it, given the config it trained with (the same folders, in the same order), else the
    side each image's dataset declares."""
    if config is None:
        return [s for s in samples if s.split == side]
    train, val = train_val_split(samples, config.val_fraction, config.group_size, config.seed)
    return val if side == "val" else train


def load_model(path: str | Path):
    """(keras.Model, Config) from a run's model.keras and the config.json beside it."""
    path = Path(path)
    config_path = path.parent / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; every handnet model needs its config.json")
    return read_keras_model(path), Config.load(config_path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="a run's model.keras (config.json beside it) or an exported .tflite")
    parser.add_argument("--data", required=True, nargs="+", help="dataset folder(s)")
    parser.add_argument("--labels", help="LABEL=ROLE,... (default: the model's own mapping)")
    parser.add_argument("--split", choices=SPLITS, help="only the images on this side of the model's own "
                        "train / validation split, where --data are the folders it trained on (as train.py "
                        "drew it), else of the split the dataset declares (the built-in synthetic set's "
                        "validation scenes: val); default: every image")
    parser.add_argument("--task", choices=TASKS, default="open", help="open: the open hands, other hands "
                        "ignored; every: every hand, open or not (default: %(default)s)")
    parser.add_argument("--threshold", type=float, help="the task's score threshold (default: the model's; with a "
                        "hand map, its open_threshold for open hands and score_threshold for every hand)")
    parser.add_argument("--group-size", type=int, metavar="N", help="consecutive files that the F1 interval "
                        "resamples together, as near-duplicates (default: the model's --group-size)")
    parser.add_argument("--out", help="metrics JSON (default: metrics-<data>.json beside the model)")
    parser.add_argument("--worst", type=int, metavar="N",
                        help="also write the N images with the most mistakes: worst-<data>.png and .txt beside the JSON")
    args = parser.parse_args(argv)
    if args.threshold is not None:
        try:
            check_threshold(args.threshold, "--threshold")
        except ValueError as err:
            parser.error(str(err))
    if args.worst is not None and args.worst < 1:
        parser.error(f"--worst {args.worst}: show at least 1 image")
    tflite = args.model.endswith(".tflite")
    name = Path(args.data[0]).resolve().name
    out = Path(args.out) if args.out else Path(args.model).parent / f"metrics-{name}.json"
    try:
        outputs = {"--out": out}
        if args.worst:
            outputs |= {"--worst (its PNG)": out.with_name(f"worst-{name}.png"),
                        "--worst (its list)": out.with_name(f"worst-{name}.txt")}
        refuse_inputs_as_outputs(outputs, [args.model, *args.data])
        check_output_file(out, "--out")
        if tflite:
            from handnet.runtime import read_model_info  # noqa: PLC0415

            model, config = args.model, Config.from_dict(read_model_info(args.model).raw["config"])
        else:
            model, config = load_model(args.model)
        samples = load_samples(args.data, args.labels or config.labels)
        own = same_folders(args.data, config.data)
        if args.split:
            samples = split_side(samples, args.split, config if own else None)
            if not samples:
                raise DatasetError(f"{', '.join(args.data)}: no image declares split '{args.split}' "
                                   f"(hands.json's per-image `split`; datasets/README.md)")
        elif own:
            print("note: these are the folders the model trained on, so the figures include its training "
                  "images; --split val scores only the ones it held back", file=sys.stderr)
    except (DatasetError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    threshold = task_threshold(config, args.task) if args.threshold is None else args.threshold
    if tflite:
        found = [(s, d) for s, _, d in detect_samples_tflite(model, samples)]
    else:
        found = [(s, d) for s, _, _, d in predict_samples(model, samples, config, progress=True)]
    found = [task_view(s, d, args.task, config) for s, d in found]
    per_image = [match_image(d, s.hands, (s.height, s.width), config.match_distance) for s, d in found]
    metrics = {"task": args.task, **evaluate_matches(per_image, threshold)}
    interval = f1_interval(per_image, threshold, group_indices([s for s, _ in found], args.group_size or config.group_size))
    if interval:
        metrics["f1_interval"] = [round(v, 4) for v in interval]
    write_text(out, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    print(format_metrics(metrics))
    print(f"wrote {out}")
    if args.worst:
        png, listing = out.with_name(f"worst-{name}.png"), out.with_name(f"worst-{name}.txt")
        shown = save_worst(found, threshold, config, args.worst, png, listing)
        print(f"wrote {png} and {listing} ({shown} images with mistakes; "
              f"python -m handnet.annotate {args.data[0]} --files {listing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
