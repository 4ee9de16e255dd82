"""Is one loss better than another, or was it the seed? The losses compared over many seeds, each
seed a fresh split of the crops and fresh weights, and read pair by pair.

    python train.py gestures --data datasets/linto-gestures --compare ce bce_na --seeds 0-9 \\
        --init-from models/handnet-fast-int8.tflite --no-export --out runs/g-study

One --compare moves by tens of points from one seed to the next (docs/gestures.md), so it cannot
tell a loss's effect from luck. Each seed trains every loss on the same split (compare_losses,
into <out>/s<seed>/<loss>). study.md and study.json then give each figure's mean per loss, and
against the first loss named (the reference: ce by default) the mean paired difference, its 95%
Student-t interval, and on how many seeds the other loss was ahead and behind. The figures:
results.json's, at each model's own tuned threshold and at the article's 0.4; and unseen gestures
sent to na at matched known accuracy (metrics.unseen_to_na_at), which leaves out the noise of
each model's threshold choice (operating.png). `python -m handnet.gesture_study FOLDER` writes
them again from the runs a study folder holds.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from handnet.config import GESTURE_LOSSES, GestureConfig
from handnet.draw import plot_operating_curves
from handnet.gestures import compare_losses, strict_json
from handnet.metrics import paired_difference, unseen_to_na_at

LEVELS = np.round(np.arange(0.90, 1.0001, 0.005), 3)  # known-accuracy levels of operating.png
TABLE_LEVELS = (0.95, 0.97, 0.98, 0.99)  # ... and of study.md
FIGURES = {  # study key: (study.md label, its value in a results.json)
    "known_accuracy": ("known accuracy, tuned threshold", lambda r: r["known_accuracy"]),
    "unseen_to_na": ("unseen -> na, tuned threshold", lambda r: r["unseen_to_na"]),
    "unseen_auroc": ("unseen AUROC (no threshold)", lambda r: r["unseen_auroc"]),
    "known_accuracy_at_0.4": ("known accuracy at 0.4", lambda r: r["at_article_threshold"]["known_accuracy"]),
    "unseen_to_na_at_0.4": ("unseen -> na at 0.4", lambda r: r["at_article_threshold"]["unseen_to_na"]),
}


def run_study(config: GestureConfig, seeds: list[int], losses=GESTURE_LOSSES) -> dict:
    """compare_losses on each seed into config.out/s<seed>; then study.json, study.md and
    operating.png in config.out. Returns the summary (summarise_study)."""
    out = Path(config.out)
    for number, seed in enumerate(seeds, 1):
        print(f"##### seed {seed} ({number} of {len(seeds)}) #####")
        compare_losses(dataclasses.replace(config, seed=seed, out=str(out / f"s{seed}"), classes=[]), losses)
    return write_study(out, seeds, losses)


def write_study(out: str | Path, seeds: list[int], losses) -> dict:
    """Summarise the runs in out/s<seed>/<loss> into study.json, study.md and operating.png."""
    out = Path(out)
    summary = summarise_study(out, seeds, losses)
    (out / "study.json").write_text(json.dumps(strict_json(summary), indent=2, allow_nan=False) + "\n")
    (out / "study.md").write_text(study_markdown(summary))
    plot_operating_curves(LEVELS, {loss: np.array(summary["at_known_accuracy"][loss], np.float64) for loss in losses},
                          out / "operating.png", f"{Path(summary['data']).name}: {len(seeds)} seeds, "
                                                 "the best threshold for each accuracy kept")
    print(study_markdown(summary))
    print(f"study folder: {out}")
    return summary


def summarise_study(out: str | Path, seeds: list[int], losses) -> dict:
    """The study's figures from the runs in out/s<seed>/<loss> (results.json and scores.npz):
    per_seed[loss][figure] (one value per seed), at_known_accuracy[loss] (seeds x LEVELS), and
    paired[loss][figure] against losses[0] (metrics.paired_difference), figures at matched known
    accuracy included as 'unseen_to_na_at_known_<level>' (None on the seeds where some loss cannot
    keep that level)."""
    out = Path(out)
    per_seed = {loss: {key: [] for key in FIGURES} for loss in losses}
    curves = {loss: [] for loss in losses}
    for seed in seeds:
        for loss in losses:
            run = out / f"s{seed}" / loss
            results = json.loads((run / "results.json").read_text())
            for key, (_, value) in FIGURES.items():
                per_seed[loss][key].append(value(results))
            with np.load(run / "scores.npz") as saved:
                known = saved["scores"].shape[1] - 1
                curves[loss].append(unseen_to_na_at(saved["truth"], saved["scores"], saved["unseen_scores"],
                                                    known, LEVELS))
    for level in TABLE_LEVELS:  # on the seeds where every loss keeps the level, so means pair up
        column = int(np.argmin(np.abs(LEVELS - level)))
        kept = np.all([[not np.isnan(row[column]) for row in curves[loss]] for loss in losses], axis=0)
        for loss in losses:
            per_seed[loss][f"unseen_to_na_at_known_{level:g}"] = [
                float(row[column]) if keep else None for row, keep in zip(curves[loss], kept)]
    reference = losses[0]
    config = GestureConfig.load(out / f"s{seeds[0]}" / reference / "config.json")
    return {
        "data": config.data, "unseen": config.unseen, "seeds": list(seeds), "losses": list(losses),
        "reference": reference, "levels": LEVELS.tolist(),
        "per_seed": per_seed,
        "at_known_accuracy": {loss: [row.tolist() for row in curves[loss]] for loss in losses},
        "paired": {loss: {key: paired_difference(per_seed[reference][key], values)
                          for key, values in per_seed[loss].items()} for loss in losses[1:]},
    }


def study_markdown(summary: dict) -> str:
    """study.md: a row per figure, the mean per loss, then each loss against the reference."""
    losses, reference = summary["losses"], summary["reference"]
    others = losses[1:]
    labels = {key: label for key, (label, _) in FIGURES.items()}
    labels.update({f"unseen_to_na_at_known_{level:g}": f"unseen -> na, known accuracy kept >= {level:g}"
                   for level in TABLE_LEVELS})
    seeds = summary["seeds"]
    lines = [f"# {', '.join(losses)} on {summary['data']}: {len(seeds)} seeds ({' '.join(map(str, seeds))})", "",
             f"Means over the seeds (in a row at a known-accuracy level, over the seeds where every loss can keep "
             f"it: n of them); "
             f"\"vs {reference}\": the mean paired difference, its 95% interval, and on how many seeds the loss "
             f"was ahead / behind.", "",
             "| figure | " + " | ".join(losses) + " | " + " | ".join(f"{loss} vs {reference}" for loss in others) + " |",
             "|---|" + "---|" * (len(losses) + len(others))]
    for key, label in labels.items():
        counted = sum(v is not None for v in summary["per_seed"][reference][key])
        if key.startswith("unseen_to_na_at_known_"):
            label += f" (n = {counted})"
        means = []
        for loss in losses:
            values = [v for v in summary["per_seed"][loss][key] if v is not None]  # None: no figure (JSON has no NaN)
            means.append(f"{np.mean(values):.3f}" if values else "-")
        pairs = []
        for loss in others:
            p = summary["paired"][loss][key]
            if p["mean"] is None:
                pairs.append("-")
            elif p["low"] is None:
                pairs.append(f"{p['mean']:+.3f}, {p['ahead']} / {p['behind']}")
            else:
                pairs.append(f"{p['mean']:+.3f} ({p['low']:+.3f} to {p['high']:+.3f}), {p['ahead']} / {p['behind']}")
        lines.append(f"| {label} | " + " | ".join(means) + " | " + " | ".join(pairs) + " |")
    return "\n".join(lines) + "\n"


def finished_runs(out: str | Path) -> tuple[list[int], list[str]]:
    """(seeds, losses) of a study folder: the s<seed> folders, and the losses every one of them
    holds a finished run of (results.json), in GESTURE_LOSSES' order (so ce is the reference)."""
    out = Path(out)
    seeds = sorted(int(p.name[1:]) for p in out.glob("s*") if p.is_dir() and p.name[1:].isdigit())
    losses = [loss for loss in GESTURE_LOSSES if seeds and all((out / f"s{seed}" / loss / "results.json").is_file()
                                                               for seed in seeds)]
    if len(losses) < 2:
        raise ValueError(f"{out}: no study here (s<seed>/<loss>/results.json for two losses or more on every seed)")
    return seeds, losses


def main(argv=None) -> int:
    """python -m handnet.gesture_study FOLDER: summarise a study folder again (after adding seeds
    to it, or after an interrupted study), without training."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m handnet.gesture_study", description=main.__doc__)
    parser.add_argument("folder", help="a study folder: s<seed>/<loss>/ runs, as train.py gestures --seeds leaves")
    args = parser.parse_args(argv)
    try:
        write_study(args.folder, *finished_runs(args.folder))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
