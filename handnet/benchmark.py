"""Real frames of real people: handnet beside MediaPipe's BlazePalm, by one rule, on every real set.

    python -m handnet.benchmark                                   # the shipped model
    python -m handnet.benchmark --model runs/x/model-int8.tflite --out runs/x/benchmark
    python -m handnet.benchmark --set mine=datasets/mine --no-blazepalm

For each real set in ../shared/datasets (BENCH_SETS; datasets/README.md) that the model did not
train on, or the part of it the model's run held back (a set's own `valid/` or `test/` folders
where the model trained on its `train/` folder), both detectors run on every image, one CPU
thread each, and are scored for two tasks by the same rule:

- every hand: every annotated hand is one to find;
- open hands: the open hands (config.OPEN_HAND_LABELS) are to be found, every other hand is
  ignored (a detection on it is neither right nor wrong).

A hand is found when a detection's centre lies inside its annotated box (metrics.within, rule
`box`). handnet is cut at its stored thresholds, BlazePalm at MediaPipe's 0.5; AP covers every
score down to 0.05. A model without a hand map finds open hands only, and is scored on every
hand with them. Writes benchmark.md (the table), benchmark.json and pr-curves.png into --out.
Sets whose folders are absent are skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from handnet.annotations import DatasetError, load_samples, read_image, spread
from handnet.config import Config
from handnet.evaluate import AP_THRESHOLD, TASKS, task_detections, task_hands, task_threshold
from handnet.metrics import evaluate_matches, match_image, within
from handnet.peaks import OPEN, OTHER

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "handnet-fast-int8.tflite"
LABELS = "open-other"
TASK_NAMES = {"every": "every hand", "open": "open hands"}
BLAZEPALM_THRESHOLD = 0.5  # MediaPipe's min_score_thresh for palms


@dataclasses.dataclass(frozen=True)
class BenchSet:
    name: str
    folders: tuple[str, ...]  # the images scored, relative to the datasets folder
    what: str


# The real sets with hand boxes; a set's held-back folders where it has a split of its own.
BENCH_SETS = (
    BenchSet("hagrid", ("hagrid-eval-only",), "176 people in their homes, 0.5-4 m, phone and webcam (evaluation only)"),
    BenchSet("linto", ("linto-webcam-gestures",), "webcam, a man at a desk, 10 gestures (testing only)"),
    BenchSet("subhih-test", ("subhih-hands-webcam/test",), "webcam, one man, face and body in frame (its test split)"),
    BenchSet("asl-letters", ("asl-letters-roboflow/valid", "asl-letters-roboflow/test"),
             "phone close-ups of ASL letters (its valid and test splits)"),
    BenchSet("finger-counts", ("roboflow-finger-counts/valid",), "phone photos, 1-5 fingers (its valid split)"),
    BenchSet("hand-pose", ("roboflow-hand-pose-pd/valid", "roboflow-hand-pose-pd/test"),
             "phone photos of one person, upper body (its valid and test splits)"),
    BenchSet("roboflow-hands", ("roboflow-hands",), "phone photos, mostly open palms"),
)


def trained_on(folder: Path, training: list[str]) -> bool:
    """Whether a model that trained on the `training` folders saw images of `folder`: one of
    them is the folder, lies inside it or holds it."""
    folder = folder.resolve()
    for root in map(lambda p: Path(p).resolve(), training):
        if root == folder or root.is_relative_to(folder) or folder.is_relative_to(root):
            return True
    return False


def pick_sets(root: Path, training: list[str], sets=BENCH_SETS, log=print) -> list[tuple[BenchSet, list[Path]]]:
    """The sets to score, each with its folders: absent ones and those the model trained on are
    skipped, with a line saying why."""
    picked = []
    for bench in sets:
        folders = [root / folder for folder in bench.folders]
        if not all(folder.is_dir() for folder in folders):
            log(f"{bench.name}: not found under {root}, skipped")
        elif any(trained_on(folder, training) for folder in folders):
            log(f"{bench.name}: the model trained on it, skipped")
        else:
            picked.append((bench, folders))
    return picked


def run_detector(detect, samples) -> tuple[list, list[float]]:
    """([detections of each sample], [milliseconds of each detect call])."""
    found, times = [], []
    for sample in samples:
        frame = read_image(sample.path)
        started = time.perf_counter()
        found.append(detect(frame))
        times.append(1000 * (time.perf_counter() - started))
    return found, times


def score(samples, found, hand_floor: float) -> dict:
    """{task: per-image match_image results} by the box rule; hand_floor: the every-hand score a
    detection needs to be reported, before the open task ranks it by openness."""
    return {task: [match_image(task_detections(dets, task, hand_floor), task_hands(s.hands, task),
                               (s.height, s.width), rule="box") for s, dets in zip(samples, found)]
            for task in TASKS}


def label_counts(samples, found, threshold: float, rule: str = "box") -> dict:
    """How a detector with a hand map labels the hands it finds at `threshold`: {"open": [labelled
    open, found], "other": [labelled other, found]}, each annotated hand taking the detection
    nearest its centre among those that are it (metrics.within)."""
    counts = {"open": [0, 0], "other": [0, 0]}
    for sample, detections in zip(samples, found):
        shown = [d for d in detections if d.score >= threshold]
        for hand in (h for h in sample.hands if h.role != "negative"):
            near = [d for d in shown if within(d, hand, rule=rule)]
            if not near:
                continue
            best = min(near, key=lambda d: math.hypot(d.x - hand.x, d.y - hand.y))
            truth = OPEN if hand.role == "positive" else OTHER
            counts[truth][1] += 1
            counts[truth][0] += best.label == truth
    return counts


def pr_curve(per_image) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) over every score threshold, highest first."""
    counted = sorted((c for cs, _ in per_image for c in cs), key=lambda c: -c[0])
    truths = sum(len(ts) for _, ts in per_image)
    tp = np.cumsum([c[1] for c in counted], dtype=float)
    ranks = np.arange(1, len(counted) + 1)
    return tp / max(truths, 1), tp / np.maximum(ranks, 1)


def figures(per_image, threshold: float) -> dict:
    m = evaluate_matches(per_image, threshold)
    return {key: m[key] for key in ("precision", "recall", "f1", "ap", "hands", "true_positives", "false_positives")}


def benchmark(model: str, root: Path, sets=BENCH_SETS, blazepalm: str | None = None, threads: int = 1,
              limit: int = 0, log=print) -> dict:
    """Score the model (and BlazePalm, unless blazepalm is None) on the picked sets. Returns
    {"model", "thresholds", "sets": [{name, what, folders, images, rows: {task: {detector: figures}},
    ms: {detector: median}, curves}]}."""
    from handnet.runtime import HandDetector, read_model_info  # noqa: PLC0415

    info = read_model_info(model)
    config = Config.from_dict(info.raw["config"])
    detectors = {"handnet": HandDetector(model, num_threads=threads, score_threshold=AP_THRESHOLD)}
    thresholds = {"handnet": {task: task_threshold(config, task) for task in TASKS}}
    floors = {"handnet": config.score_threshold if config.deploys_hand_map else 0.0}
    if blazepalm:
        from handnet.blazepalm import PalmDetector  # noqa: PLC0415

        detectors["blazepalm"] = PalmDetector(blazepalm, threads, score_threshold=AP_THRESHOLD)
        thresholds["blazepalm"] = {task: BLAZEPALM_THRESHOLD for task in TASKS}
        floors["blazepalm"] = 0.0
    results = []
    for bench, folders in pick_sets(root, config.data, sets, log):
        samples = load_samples([str(f) for f in folders], LABELS)
        if limit:
            samples = spread(samples, limit)
        entry = {"name": bench.name, "what": bench.what, "folders": [str(f) for f in folders],
                 "images": len(samples), "rows": {task: {} for task in TASKS}, "ms": {}, "curves": {}}
        for name, detector in detectors.items():
            log(f"{bench.name}: {name} on {len(samples)} images")
            found, times = run_detector(detector.detect, samples)
            entry["ms"][name] = float(np.median(times))
            if name == "handnet" and info.hand_map:
                entry["labels"] = label_counts(samples, found, thresholds[name]["every"])
            for task, per_image in score(samples, found, floors[name]).items():
                entry["rows"][task][name] = figures(per_image, thresholds[name][task])
                recall, precision = pr_curve(per_image)
                entry["curves"][f"{task}/{name}"] = [recall.round(4).tolist(), precision.round(4).tolist()]
        results.append(entry)
    return {"model": str(model), "hand_map": info.hand_map, "threads": threads, "thresholds": thresholds,
            "sets": results}


def format_table(result: dict) -> str:
    """The markdown table: a row per set and task, handnet beside BlazePalm."""
    names = [name for name in ("handnet", "blazepalm") if name in result["thresholds"]]
    head = "| set | images | task | hands |"
    rule = "|---|---|---|---|"
    for name in names:
        head += f" {name} P | R | F1 | AP |"
        rule += "---|---|---|---|"
    head += " ms per frame (" + " / ".join(names) + ") |"
    rule += "---|"
    lines = [head, rule]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for entry in result["sets"]:
        for task in ("every", "open"):
            rows = entry["rows"][task]
            line = f"| {entry['name']} | {entry['images']} | {TASK_NAMES[task]} | {rows[names[0]]['hands']} |"
            for name in names:
                m = rows[name]
                line += " " + " | ".join(fmt(m[k]) for k in ("precision", "recall", "f1", "ap")) + " |"
            line += " " + " / ".join(f"{entry['ms'][name]:.1f}" for name in names) + " |"
            lines.append(line)
    return "\n".join(lines)


def format_labels(result: dict) -> str:
    """The markdown table of how handnet labels the hands it finds (a model with a hand map)."""
    lines = ["| set | open hands found | labelled open | other hands found | labelled other |", "|---|---|---|---|---|"]
    for entry in result["sets"]:
        if "labels" not in entry:
            continue
        (open_right, open_found), (other_right, other_found) = entry["labels"]["open"], entry["labels"]["other"]
        share = lambda right, found: f"{right / found:.2f}" if found else "-"  # noqa: E731
        lines.append(f"| {entry['name']} | {open_found} | {share(open_right, open_found)} | {other_found} | "
                     f"{share(other_right, other_found)} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot_curves(result: dict, path: Path) -> None:
    """PR curves: a row per set, a column per task, one line per detector, a dot at its threshold."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sets = result["sets"]
    fig, axes = plt.subplots(len(sets), 2, figsize=(8, 3 * len(sets)), squeeze=False)
    colours = {"handnet": "tab:purple", "blazepalm": "tab:green"}
    for row, entry in zip(axes, sets):
        for ax, task in zip(row, ("every", "open")):
            for name, colour in colours.items():
                if f"{task}/{name}" not in entry["curves"]:
                    continue
                recall, precision = entry["curves"][f"{task}/{name}"]
                m = entry["rows"][task][name]
                ax.plot(recall, precision, color=colour, label=f"{name} AP {m['ap'] or 0:.2f}")
                if m["recall"] is not None:
                    ax.plot([m["recall"]], [m["precision"]], "o", color=colour)
            if not entry["rows"][task][next(iter(entry["rows"][task]))]["hands"]:
                ax.text(0.5, 0.5, "no such hands here", ha="center", va="center", fontsize=9)
            ax.set_title(f"{entry['name']}: {TASK_NAMES[task]}", fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
            if ax.lines:
                ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    from handnet.atomic import partial_file  # noqa: PLC0415

    tmp = partial_file(path)
    fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def parse_set(spec: str) -> BenchSet:
    """'NAME=FOLDER[,FOLDER...]' -> BenchSet (folders as given: absolute or relative to --datasets)."""
    name, sep, folders = spec.partition("=")
    if not sep or not name.strip() or not folders.strip():
        raise argparse.ArgumentTypeError(f"'{spec}' is not NAME=FOLDER[,FOLDER...]")
    return BenchSet(name.strip(), tuple(f.strip() for f in folders.split(",") if f.strip()), "")


def main(argv=None) -> int:
    from handnet.atomic import write_text  # noqa: PLC0415
    from handnet.blazepalm import DEFAULT_MODEL as BLAZEPALM  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m handnet.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="a handnet .tflite (default: the shipped one)")
    parser.add_argument("--datasets", default=str(SHARED_DATASETS), help="where the real sets are (default: %(default)s)")
    parser.add_argument("--set", dest="sets", action="append", type=parse_set, metavar="NAME=FOLDER[,FOLDER]",
                        help="score these folders instead of BENCH_SETS (repeatable; relative to --datasets)")
    parser.add_argument("--blazepalm", default=str(BLAZEPALM), help="BlazePalm .tflite (default: %(default)s)")
    parser.add_argument("--no-blazepalm", action="store_true", help="handnet alone")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads for both (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=0, help="at most N images per set, spread over it (0: all)")
    parser.add_argument("--out", default="runs/benchmark", help="folder for benchmark.md, .json and pr-curves.png "
                        "(default: %(default)s)")
    args = parser.parse_args(argv)
    root = Path(args.datasets)
    blazepalm = None if args.no_blazepalm else args.blazepalm
    if args.threads < 1 or args.limit < 0:
        print("error: --threads must be at least 1 and --limit 0 or more", file=sys.stderr)
        return 2
    if blazepalm and not Path(blazepalm).is_file():
        print(f"{blazepalm}: BlazePalm not found, so handnet is scored alone", file=sys.stderr)
        blazepalm = None
    if not root.is_dir() and not args.sets:
        print(f"{root}: no real sets here (../shared/datasets is absent?); nothing to score", file=sys.stderr)
        return 0
    try:
        result = benchmark(args.model, root, args.sets or BENCH_SETS, blazepalm, args.threads, args.limit,
                           log=lambda line: print(line, file=sys.stderr))
    except (DatasetError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not result["sets"]:
        print("no set to score", file=sys.stderr)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table, labels = format_table(result), format_labels(result)
    thresholds = ", ".join(f"{name} {t['every']:g} / {t['open']:g}" for name, t in result["thresholds"].items())
    write_text(out / "benchmark.md", f"{table}\n\nThresholds (every hand / open hands): {thresholds}; "
                                     f"{result['threads']} thread(s). Model: {result['model']}.\n"
                                     + (f"\nLabels of the hands handnet finds:\n\n{labels}\n" if labels else ""))
    write_text(out / "benchmark.json", json.dumps(result) + "\n")
    plot_curves(result, out / "pr-curves.png")
    print(table)
    if labels:
        print(f"\n{labels}")
    print(f"wrote {out / 'benchmark.md'}, benchmark.json and pr-curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
