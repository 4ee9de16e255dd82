"""Which loss fits sparse hand heatmaps? The same network and data, trained once per loss.

    python -m handnet.experiments.losses                         # the full run behind docs/losses.md
    python -m handnet.experiments.losses --losses focal mse --seeds 1 --steps 100 --out /tmp/losses
    python -m handnet.experiments.losses --regimes real --real-data ../shared/datasets/roboflow-finger-counts

Two regimes of synthetic scenes (handnet.synthetic, hand radii as fractions of the frame's shorter
side): `near` (1/8 to 1/3: blobs of many output cells) and `far` (1/24 to 1/12: one or two cells
per hand in an otherwise black target). A third, `real`, takes photographs from dataset folders
(--real-data, labels mapped by --real-labels), letterboxed to the same input size. Every loss
trains with the ignore mask around `other` hands (`mask`) and without it (`no_mask`: other hands
are plain background). Each run is repeated over seeds (network initialisation, batch order, and
the synthetic scenes or the real set's train/validation split).

Per run it measures, on validation scenes: precision, recall and F1 at the score threshold with
the best F1 on training scenes, AP, the mean predicted value at hand peaks and on the background
(an MSE collapse shows as both near zero), and on `other` hands the mean peak score and the share
that would be detected (which the mask is meant to leave free). Figures are counted the way
handnet.metrics counts them for every model: `other` hands are neither hits nor misses.

It writes results.json (every run), table.md (mean +- standard deviation over seeds) and three
PNGs: curves.png (validation AP during training), scores.png (predicted values at peaks and on
the background) and heatmaps.png (one validation scene per regime as each loss sees it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from handnet.annotations import DatasetError, Hand, Sample, load_samples, read_image, split_samples
from handnet.config import DEFAULT_LABELS, Config, SavedConfig, parse_labels
from handnet.evaluate import best_threshold
from handnet.letterbox import Letterbox, apply_letterbox
from handnet.losses import LOSSES, get_loss
from handnet.metrics import evaluate_matches, match_image
from handnet.model import build_model
from handnet.peaks import detect_hands
from handnet.synthetic import generate_scene
from handnet.targets import ROLE_CODES, config_targets

REGIMES = {"near": (1 / 8, 1 / 3), "far": (1 / 24, 1 / 12)}  # hand radius / shorter side
REAL = "real"  # the regime of LossExperiment.real_data's photographs
MASKS = ("mask", "no_mask")
CHECKPOINTS = 6  # validation AP this many times per run, for the learning curves
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)
STEM_CHANNELS = 24  # the fast network's 1/4 stage when docs/losses.md was measured (the default then)


@dataclasses.dataclass
class LossExperiment(SavedConfig):
    losses: list[str] = dataclasses.field(default_factory=lambda: list(LOSSES))
    regimes: list[str] = dataclasses.field(default_factory=lambda: list(REGIMES))
    masks: list[str] = dataclasses.field(default_factory=lambda: list(MASKS))
    seeds: int = 3
    size: tuple[int, ...] = (96, 128)  # frame = network input (height, width)
    train_images: int = 384
    val_images: int = 96
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 2e-3
    real_data: list[str] = dataclasses.field(default_factory=list)  # dataset folders for the `real` regime
    real_labels: str = "five=positive,*=ignore"  # their labels' roles (as train.py --labels)
    out: str = "docs/losses"

    def __post_init__(self):
        self.size = tuple(int(v) for v in self.size)
        self.real_data = [str(d) for d in self.real_data]
        if self.real_data and REAL not in self.regimes:
            self.regimes = [*self.regimes, REAL]
        for name, chosen, known in (("loss", self.losses, LOSSES), ("regime", self.regimes, (*REGIMES, REAL)),
                                    ("mask", self.masks, MASKS)):
            unknown = [v for v in chosen if v not in known]
            if unknown or not chosen:
                raise ValueError(f"unknown or no {name} {unknown} (choose from {', '.join(known)})")
        if REAL in self.regimes and not self.real_data:
            raise ValueError(f"regime '{REAL}' needs dataset folders (--real-data)")
        if self.seeds < 1 or self.steps < CHECKPOINTS:
            raise ValueError(f"need at least 1 seed and {CHECKPOINTS} steps")


# ---------------------------------------------------------------------------------------------
# Data


@dataclasses.dataclass
class Split:
    images: np.ndarray  # (N, H, W, 3) float32
    samples: list[Sample]  # hands with roles as the metrics see them: open positive, other ignore


def make_split(regime: str, count: int, size, seed: int, offset: int) -> Split:
    short = min(size)
    radii = tuple(f * short for f in REGIMES[regime])
    roles = parse_labels(DEFAULT_LABELS)
    images, samples = [], []
    for index in range(offset, offset + count):
        image, hands = generate_scene(seed, index, size, radii)
        images.append(image.astype(np.float32))
        samples.append(Sample(f"{regime}-{index}", tuple(
            Hand(h["x"], h["y"], h["radius"], h["label"], roles[h["label"]]) for h in hands), size[1], size[0]))
    return Split(np.stack(images), samples)


def real_split(samples: list[Sample], size) -> Split:
    """Photographs letterboxed to the network input, their hands mapped along."""
    images, boxed = [], []
    for sample in samples:
        image, box = apply_letterbox(read_image(sample.path), size)
        images.append(image.astype(np.float32))
        scale = float(np.sqrt(box.scale_x * box.scale_y))
        hands = tuple(Hand(*box.to_input(h.x, h.y), h.radius * scale, h.label, h.role) for h in sample.hands)
        boxed.append(Sample(sample.path, hands, size[1], size[0]))
    return Split(np.stack(images), boxed)


def make_datasets(exp: LossExperiment) -> dict:
    """{(regime, seed): {"train", "val", "tune"}}: fresh synthetic scenes per seed; for `real`,
    a fresh split of the photographs by groups of files (handnet.annotations.split_samples)."""
    config = Config()
    photos = load_samples(exp.real_data, exp.real_labels) if REAL in exp.regimes else []
    datasets = {}
    for regime in exp.regimes:
        for seed in range(exp.seeds):
            if regime == REAL:
                train, val = (real_split(part, exp.size)
                              for part in split_samples(photos, config.val_fraction, config.group_size, seed))
            else:
                base = 1000 * (seed + 1)
                train = make_split(regime, exp.train_images, exp.size, base, 0)
                val = make_split(regime, exp.val_images, exp.size, base, exp.train_images)
            datasets[regime, seed] = {"train": train, "val": val,
                                      "tune": Split(train.images[:64], train.samples[:64])}
    return datasets


def targets(split: Split, config: Config, mask: str) -> np.ndarray:
    """(N, h, w, 2) y_true; no_mask turns the ignore hands into background."""
    out = []
    for sample in split.samples:
        rows = [(h.x, h.y, h.radius, ROLE_CODES[h.role if mask == "mask" or h.role == "positive" else "negative"])
                for h in sample.hands]
        heat, weight = config_targets(np.asarray(rows, np.float32).reshape(-1, 4), config.input_size, config)
        out.append(np.stack([heat, weight], -1))
    return np.stack(out)


# ---------------------------------------------------------------------------------------------
# Measuring one model


def heatmap_figures(heatmaps: np.ndarray, y_true: np.ndarray) -> dict:
    """Mean prediction at hand peaks (target 1) and on the background (target under 0.01), both
    where the weight is 1."""
    target, weight = y_true[..., 0], y_true[..., 1]
    peaks = (target >= 1) & (weight > 0)
    background = (target < 0.01) & (weight > 0)
    return {"mean_at_peaks": float(heatmaps[peaks].mean()) if peaks.any() else None,
            "mean_on_background": float(heatmaps[background].mean())}


def other_hand_figures(heatmaps: np.ndarray, samples: list[Sample], stride: int, threshold: float) -> dict:
    """On the ignored (`other`) hands: the mean of each one's highest score within its radius,
    and the share of them whose highest score reaches the detection threshold."""
    best = []
    for heatmap, sample in zip(heatmaps, samples):
        rows, cols = np.mgrid[0 : heatmap.shape[0], 0 : heatmap.shape[1]]
        for h in sample.hands:
            if h.role != "ignore":
                continue
            reach = max(h.radius / stride, 1.0)
            inside = ((cols + 0.5 - h.x / stride) ** 2 + (rows + 0.5 - h.y / stride) ** 2) <= reach**2
            best.append(float(heatmap[inside].max()) if inside.any() else 0.0)
    if not best:
        return {"other_hands": 0, "other_mean_score": None, "other_detected": None}
    return {"other_hands": len(best), "other_mean_score": float(np.mean(best)),
            "other_detected": float(np.mean(np.asarray(best) >= threshold))}


def detections_per_image(heatmaps: np.ndarray, config: Config) -> list:
    identity = Letterbox(1.0, 1.0, 0.0, 0.0)
    return [detect_hands(h, identity, "open", 0.05, config.stride, config.sigma_scale, config.min_sigma) for h in heatmaps]


def matches(heatmaps: np.ndarray, samples: list[Sample], config: Config) -> list:
    return [match_image(d, s.hands, (s.height, s.width), config.match_distance)
            for d, s in zip(detections_per_image(heatmaps, config), samples)]


def predict(model, images: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(model(images[i : i + 32], training=False))[..., 0]
                           for i in range(0, len(images), 32)])


# ---------------------------------------------------------------------------------------------
# One run, all runs


class Trainer:
    """One network and optimizer per loss, compiled once (tracing a Keras train step takes
    seconds, more than a short run's training), reset to a seed's fresh initial weights and a
    zeroed optimizer before each run."""

    def __init__(self, exp: LossExperiment, loss: str):
        self.exp, self.config = exp, Config(input_size=exp.size, loss=loss, stem_channels=STEM_CHANNELS)
        self.model = build_model(self.config)
        schedule = keras.optimizers.schedules.CosineDecay(exp.learning_rate, exp.steps)
        self.model.compile(keras.optimizers.Adam(schedule), loss=get_loss(self.config), jit_compile=False)

    def reset(self, seed: int) -> None:
        keras.utils.set_random_seed(seed)
        self.model.set_weights(build_model(self.config).get_weights())
        for variable in self.model.optimizer.variables:  # moments, and the step count the schedule reads
            variable.assign(np.zeros(variable.shape, variable.dtype))

    def run(self, regime: str, mask: str, seed: int, data: dict) -> tuple[dict, np.ndarray]:
        """Train from scratch on data["train"]; returns (figures with the AP curve, validation heatmaps)."""
        exp, config, model = self.exp, self.config, self.model
        train, val, tune = data["train"], data["val"], data["tune"]
        self.reset(seed)
        y_train = targets(train, config, mask)
        rng = np.random.default_rng(seed)
        curve, started, chunk = [], time.time(), exp.steps // CHECKPOINTS
        for checkpoint in range(CHECKPOINTS):
            for _ in range(chunk if checkpoint < CHECKPOINTS - 1 else exp.steps - chunk * (CHECKPOINTS - 1)):
                batch = rng.integers(0, len(train.images), exp.batch_size)
                model.train_on_batch(train.images[batch], y_train[batch])
            ap = evaluate_matches(matches(predict(model, val.images), val.samples, config), 0.5)["ap"]
            curve.append((min((checkpoint + 1) * chunk, exp.steps), ap))
        seconds = time.time() - started
        threshold = best_threshold(matches(predict(model, tune.images), tune.samples, config), THRESHOLDS)
        heatmaps = predict(model, val.images)
        figures = evaluate_matches(matches(heatmaps, val.samples, config), threshold)
        row = {"loss": config.loss, "regime": regime, "mask": mask, "seed": seed, "threshold": threshold,
               **{k: figures[k] for k in ("precision", "recall", "f1", "ap")},
               **heatmap_figures(heatmaps, targets(val, config, "mask")),
               **other_hand_figures(heatmaps, val.samples, config.stride, threshold),
               "curve": curve, "train_seconds": round(seconds, 1)}
        return row, heatmaps


def run(exp: LossExperiment, progress=print) -> list[dict]:
    """Every (loss, regime, seed, mask) run; writes results, table and figures into exp.out."""
    datasets = make_datasets(exp)  # first: a bad dataset folder stops the run before anything is written
    out = Path(exp.out)
    out.mkdir(parents=True, exist_ok=True)
    exp.save(out / "experiment.json")
    rows, examples = [], {}
    total = len(exp.losses) * len(datasets) * len(exp.masks)
    for loss in exp.losses:
        trainer = Trainer(exp, loss)
        for (regime, seed), data in datasets.items():
            for mask in exp.masks:
                row, heatmaps = trainer.run(regime, mask, seed, data)
                rows.append(row)
                if seed == 0:
                    examples[(regime, loss, mask)] = (data["val"], heatmaps, row)
                progress(f"[{len(rows)}/{total}] {regime:4} {loss:13} {mask:7} seed {seed}: "
                         f"F1 {row['f1'] or 0:.3f} AP {row['ap'] or 0:.3f} peaks {row['mean_at_peaks'] or 0:.3f} "
                         f"background {row['mean_on_background']:.4f} ({row['train_seconds']:.0f} s)")
                (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "table.md").write_text(summary_table(rows) + "\n")
    plot_curves(rows, out / "curves.png")
    plot_scores(examples, Config(input_size=exp.size), out / "scores.png")
    plot_heatmaps(examples, out / "heatmaps.png")
    return rows


# ---------------------------------------------------------------------------------------------
# Reporting

COLUMNS = (("f1", "F1"), ("ap", "AP"), ("precision", "P"), ("recall", "R"), ("mean_at_peaks", "peak mean"),
           ("mean_on_background", "background mean"), ("other_mean_score", "score on other"),
           ("other_detected", "other detected"))


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds of every figure, per (regime, loss, mask)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["regime"], row["loss"], row["mask"]), []).append(row)
    summary = []
    for (regime, loss, mask), runs in groups.items():
        entry = {"regime": regime, "loss": loss, "mask": mask, "seeds": len(runs)}
        for key, _ in COLUMNS:
            values = [r[key] if r[key] is not None else np.nan for r in runs]
            entry[key] = (float(np.nanmean(values)), float(np.nanstd(values))) if not np.isnan(values).all() else None
        summary.append(entry)
    return summary


def summary_table(rows: list[dict]) -> str:
    lines = ["| regime | loss | mask | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---|---|" + "---:|" * len(COLUMNS)]
    for entry in summarise(rows):
        cells = []
        for key, _ in COLUMNS:
            value = entry[key]
            digits = 4 if key == "mean_on_background" else 3
            cells.append("-" if value is None else f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}")
        lines.append(f"| {entry['regime']} | {entry['loss']} | {entry['mask']} | " + " | ".join(cells) + " |")
    seeds = max(entry["seeds"] for entry in summarise(rows))
    lines.append(f"\nMean ± standard deviation over {seeds} seed(s).")
    return "\n".join(lines)


def _pyplot():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_curves(rows: list[dict], path: Path) -> None:
    """Validation AP during training, mean over seeds, one panel per regime (mask runs)."""
    plt = _pyplot()
    regimes = sorted({r["regime"] for r in rows})
    fig, axes = plt.subplots(1, len(regimes), figsize=(6 * len(regimes), 4), squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        for loss in sorted({r["loss"] for r in rows}):
            runs = [r for r in rows if r["regime"] == regime and r["loss"] == loss and r["mask"] == "mask"] or \
                   [r for r in rows if r["regime"] == regime and r["loss"] == loss]
            if not runs:
                continue
            steps = [s for s, _ in runs[0]["curve"]]
            ap = np.nanmean([[np.nan if a is None else a for _, a in r["curve"]] for r in runs], axis=0)
            ax.plot(steps, ap, marker="o", label=loss)
        ax.set_title(f"{regime}: validation AP while training")
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_scores(examples: dict, config: Config, path: Path) -> None:
    """Predicted values at hand peaks and on the background, per loss (seed 0, mask runs)."""
    plt = _pyplot()
    regimes = sorted({k[0] for k in examples})
    fig, axes = plt.subplots(1, len(regimes), figsize=(6 * len(regimes), 4), squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        keys = [k for k in examples if k[0] == regime and k[2] == "mask"] or [k for k in examples if k[0] == regime]
        data, labels = [], []
        for key in keys:
            val, heatmaps, _ = examples[key]
            y = targets(val, config, "mask")
            target, weight = y[..., 0], y[..., 1]
            data += [heatmaps[(target >= 1) & (weight > 0)], heatmaps[(target < 0.01) & (weight > 0)]]
            labels += [f"{key[1]}\npeaks", f"{key[1]}\nbackground"]
        box = ax.boxplot(data, showfliers=False, patch_artist=True)
        for k, patch in enumerate(box["boxes"]):
            patch.set_facecolor("tab:green" if k % 2 == 0 else "tab:gray")
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=90, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(f"{regime}: predictions at hand peaks (green) and background (grey)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_heatmaps(examples: dict, path: Path) -> None:
    """One validation scene per regime, and the heatmap each loss predicts for it (seed 0)."""
    import cv2  # noqa: PLC0415

    from handnet.draw import draw_hands, heatmap_to_bgr  # noqa: PLC0415

    rows = []
    for regime in sorted({k[0] for k in examples}):
        keys = [k for k in examples if k[0] == regime and k[2] == "mask"] or [k for k in examples if k[0] == regime]
        val, _, _ = examples[keys[0]]
        pick = max(range(len(val.samples)), key=lambda i: sum(h.role == "positive" for h in val.samples[i].hands))
        zoom = max(1, 256 // val.images.shape[2])
        image = cv2.resize(val.images[pick].astype(np.uint8), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        hands = [Hand(h.x * zoom, h.y * zoom, h.radius * zoom, h.label, h.role) for h in val.samples[pick].hands]
        tiles = [draw_hands(image, hands)]
        for key in keys:
            tile = heatmap_to_bgr(examples[key][1][pick], image.shape[:2])
            cv2.putText(tile, key[1], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        rows.append(np.hstack(tiles))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    cv2.imwrite(str(path), np.vstack(rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = LossExperiment()
    parser.add_argument("--losses", nargs="+", default=defaults.losses, help=f"default: all ({' '.join(LOSSES)})")
    parser.add_argument("--regimes", nargs="+", default=defaults.regimes)
    parser.add_argument("--masks", nargs="+", default=defaults.masks)
    parser.add_argument("--seeds", type=int, default=defaults.seeds)
    parser.add_argument("--size", type=int, nargs=2, default=defaults.size, metavar=("H", "W"))
    parser.add_argument("--train-images", type=int, default=defaults.train_images)
    parser.add_argument("--val-images", type=int, default=defaults.val_images)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--real-data", nargs="+", default=defaults.real_data, metavar="DIR",
                        help=f"dataset folders for the '{REAL}' regime (added to --regimes)")
    parser.add_argument("--real-labels", default=defaults.real_labels, help="LABEL=ROLE,... for --real-data")
    parser.add_argument("--out", default=defaults.out)
    args = parser.parse_args(argv)
    try:
        exp = LossExperiment(**{f.name: getattr(args, f.name) for f in dataclasses.fields(LossExperiment)})
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    started = time.time()
    try:
        rows = run(exp, progress=lambda line: print(line, flush=True))
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary_table(rows))
    print(f"{len(rows)} runs in {time.time() - started:.0f} s; results in {exp.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
