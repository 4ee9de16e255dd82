"""Train a hand-heatmap detector, or a gesture classifier of hand crops.

    python train.py                                   # synthetic data, fast preset, ~14 min on 2 CPU cores
    python train.py --data ../shared/datasets/roboflow-hands --labels hand=positive --out runs/hands
    python train.py --preset seed --dry-run                  # prints the network, trains nothing
    python train.py --resume runs/fast-20261123-101500       # continue an interrupted run
    python train.py gestures --data DIR --loss bce_na --out runs/gestures [--unseen UDIR] [--compare [LOSS ...]]
    python train.py gestures --data DIR --compare ce bce_na --seeds 0-9 --out runs/g-study   # losses over seeds

Every flag maps onto a field of handnet.config.Config (`--batch-size` -> batch_size), or of
GestureConfig after `gestures`.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time

from handnet.config import GESTURE_LOSSES, Config, GestureConfig

HELP = {
    "data": "dataset folder(s), any supported format; default: datasets/synthetic, the built-in set, which is "
            "generated whenever it is named and missing (other --seed, --synthetic-count or --input-size: "
            "into datasets/synthetic-seed1 and the like)",
    "data_repeats": "times each --data folder's training images recur per epoch, one number per folder "
                    "(default: once each); validation images never repeat",
    "labels": "LABEL=ROLE,... with ROLE positive (open hands) | ignore (other hands) | negative (background); "
              "'*' matches any other label (name the synthetic set's face and arm, or '*' maps them too); "
              "open-other: the one mapping of every real set (config.OPEN_HAND_LABELS)",
    "hand_map": "keep the every-hand head as the network's second output, so detections are every hand, "
                "labelled open or other (--no-hand-map: open hands alone, as files before it)",
    "open_threshold": "with the hand map: a hand is open where the open-hand map reaches it (tuned on validation "
                      "images unless --no-tune-threshold)",
    "skip_bad": "leave out unreadable images and broken annotations, each reported and listed in "
                "runs/<name>/skipped.txt (default: stop at the first, naming it)",
    "strategy": "default | mirrored (all GPUs of this machine) | multiworker (several hosts, configured by "
                "TF_CONFIG; docs/guide.md: Scaling out)",
    "precision": "training arithmetic: auto (bfloat16 on CPUs that have it natively, else float32) | float32 | "
                 "bfloat16 | float16 (GPUs); weights and the saved model stay float32",
    "preset": "model preset: fast | seed | palm",
    "stem_channels": "fast: channels of the 1/4 stage, the patch stem and its 3x3 block (default 40; the shipped "
                     "model has 24); --init takes the width of the model it starts from",
    "input_size": "network input HEIGHT WIDTH (default: fast 240 320, seed 240 426)",
    "backbone_weights": "seed: imagenet | none | PATH to a notop VGG16 .h5; palm: PATH to palm_detection_lite.tflite "
                        "(pretrained layers are frozen)",
    "init": "start from the weights of a trained model of the same preset and input channels: a run's "
            "model.keras, a .weights.h5, or an exported detector .tflite such as the shipped "
            "models/handnet-fast-int8.tflite (default: fresh weights)",
    "distill_from": "a trained detector (a run's model.keras, any preset, with the hand and openness maps) whose "
                    "maps on every training example are soft targets beside the annotations, such as a palm-preset "
                    "run: its features, taught to the fast network (default: none)",
    "distill_weight": "weight of the distillation term (default 1.0)",
    "loss": "mse | bce | weighted_bce | focal | quality_focal | dice | tversky",
    "aux_weight": "weight of the focal loss on an auxiliary training head that lights up every annotated hand, "
                  "ignored ones included; the saved model leaves it out (0 = off; default 1.0)",
    "negative_weight": "weight of the focal loss on a training head that lights up annotated negatives (the "
                       "synthetic set's faces and arms); the saved model leaves it out (0 = off; default 1.0)",
    "segment_weight": "weight of the loss on a training head that learns from label masks how much of each output "
                      "cell shows hands to find, ignored hands and negatives (the synthetic set writes masks; "
                      "datasets/README.md); the saved model leaves it out (0 = off; default 1.0)",
    "augment": "random zoom, shift, flip and colour for each training image (real data wants it; it slows learning "
               "on the synthetic set)",
    "mosaic": "with --augment: share of training examples made a 2x2 or 3x3 grid of augmented training images, "
              "so hands also come 2-3x smaller among real backgrounds, as far players do (default 0: none)",
    "epoch_val_images": "validation images behind each epoch's val_loss in the log and curves.png, spread over "
                        "them (0: all; default 480); the final metrics score every validation image",
    "dense_scenes": "the built-in synthetic set's training scenes hold 2-9 hands, 2-6 more small ones (6-20 px) "
                    "and 4-8 faces or arms, its validation scenes as many as a frame (0-5, 0-3) "
                    "(--no-dense-scenes: every scene as a frame, into datasets/synthetic-plain)",
    "flip": "without --augment: mirror each training image left-right at random (--no-flip: never)",
    "prepare": "without --augment: make each example once before training, into files in the run folder that are "
               "read back every epoch and removed after it (--no-prepare: make each afresh every time)",
    "crop_size": "train on random HEIGHT WIDTH crops of the input (default: none, whole inputs)",
    "focus_crops": "share of training crops holding a random open hand near their middle (with --crop-size or "
                   "--augment)",
    "crops_per_image": "times each training image recurs per epoch, as another crop each time",
    "tune_on": "tune the score threshold on the validation images of these --data folders alone (default: of "
               "all), such as the real photos among synthetic scenes, where the model will meet real frames",
    "out": "run folder (default: runs/<preset>-<date>-<time>)",
    "target": "gaussian | disk",
    "export": "write runs/<name>/model-int8.tflite for handnet.runtime at the end (--no-export skips it)",
}
GESTURE_HELP = {
    "data": "folder with one sub-folder of crops per known gesture plus na/ (default: the synthetic gesture "
            "crops, generated into datasets/synthetic-gestures when missing)",
    "init_from": "a model whose layers but the scores start this one: a gestures.keras (another run's, same "
                 "--backbone and --width: pretrain on a larger gesture set, fine-tune on yours), or with "
                 "--backbone fast a hand detector's model.keras or .tflite, such as the shipped "
                 "models/handnet-fast-int8.tflite",
    "backbone": "small (the gesture network's own layers) | fast (the detector's layers, so --init-from a "
                "detector can start it)",
    "stem_channels": "fast backbone: channels of its 1/4 stage (default 24, as in the shipped detector; one trained "
                     "with train.py's default has 40); --init-from takes the width of the network it names",
    "unseen": "folder with one sub-folder per unseen gesture, never trained on (default: <data>-unseen if it exists)",
    "loss": "ce | bce | bce_na",
    "threshold": "top score under which the answer is na (replaced by a tuned one, see --known-drop, "
                 "unless --no-tune-threshold)",
    "known_drop": "threshold tuning: the highest threshold whose known-gesture accuracy on validation crops is "
                  "within this of the best (default 0.02)",
    "mix_unknowns": "share of the na training draws replaced by a made-up gesture, parts of two known ones "
                    "(default 0: none)",
    "out": "run folder (default: runs/gestures-<loss>-<date>-<time>)",
    "export": "write runs/<name>/gestures-int8.tflite for handnet.runtime at the end",
    "skip_bad": "leave out crops that cannot be read, each reported and listed in runs/<name>/skipped.txt "
                "(default: stop at the first, naming it)",
}
SKIP = {"version", "classes", "radius_knots"}
INT_LISTS = {"input_size": "SIDE", "crop_size": "SIDE", "data_repeats": "N"}  # flags taking whole numbers


def build_parser(config_class=Config, help_texts=HELP, description=__doc__) -> argparse.ArgumentParser:
    """One flag per field of the config dataclass."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = config_class()
    for field in dataclasses.fields(config_class):
        if field.name in SKIP:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        help_text = help_texts.get(field.name, "")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(default, list):
            parser.add_argument(flag, nargs="+", default=default, help=help_text)
        elif field.name in INT_LISTS:
            default = () if field.name == "input_size" else default  # () = the preset's own size
            parser.add_argument(flag, nargs="*", type=int, default=default, metavar=INT_LISTS[field.name],
                                help=help_text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=help_text or f"default {default}")
    return parser


def main(argv=None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # per-epoch lines show up in logs as they happen
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["gestures"]:
        return gestures_main(argv[1:])
    parser = build_parser()
    parser.add_argument("--dry-run", action="store_true", help="build the model, print its summary, and stop")
    parser.add_argument("--resume", metavar="RUN", help="continue the interrupted run in folder RUN from its last "
                                                        "checkpoint, with its own config.json (no other flags)")
    parser.add_argument("--config", metavar="FILE", help="a recipe: a JSON object of these flags' fields (underscores, "
                        "as in a run's config.json), such as configs/handnet-fast-int8.json, the shipped model's; "
                        "flags given beside it override it")
    recipe = parser.parse_known_args(argv)[0].config
    if recipe:
        parser.set_defaults(**read_recipe(recipe, parser))
    args = vars(parser.parse_args(argv))
    dry_run, resume = args.pop("dry_run"), args.pop("resume")
    args.pop("config")
    if resume:
        if len(argv) != 2 and not (len(argv) == 1 and argv[0].startswith("--resume=")):
            parser.error("--resume takes the run's own config.json; give no other flags")
        return resume_main(resume)
    try:
        config = Config(**args)
    except ValueError as err:
        parser.error(str(err))  # one line and exit status 2, like any other bad flag
    if not config.out:
        config.out = f"runs/{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"

    # Imported here so that --help answers without loading TensorFlow.
    from handnet.model import build_model, describe_model
    from handnet.training import train

    if dry_run:
        return run_job(lambda: print(describe_model(build_model(config))))
    return run_job(lambda: train(config))


def read_recipe(path: str, parser: argparse.ArgumentParser) -> dict:
    """The Config fields a recipe file sets. A run's config.json is a recipe too: the fields that
    are not flags (version, radius knots) are left out."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            recipe = json.load(f)
    except OSError as err:
        parser.error(f"--config {path}: {err.strerror}")
    except json.JSONDecodeError as err:
        parser.error(f"--config {path}: not JSON ({err})")
    if not isinstance(recipe, dict):
        parser.error(f"--config {path}: a recipe is a JSON object of flag fields")
    fields = {field.name for field in dataclasses.fields(Config)}
    unknown = sorted(set(recipe) - fields)
    if unknown:
        parser.error(f"--config {path}: unknown field(s) {', '.join(unknown)} (names as in config.json: "
                     f"--data-repeats is data_repeats)")
    return {key: value for key, value in recipe.items() if key not in SKIP}


def resume_main(run: str) -> int:
    from pathlib import Path

    from handnet.training import CHECKPOINT, train

    def job():
        if not (Path(run) / CHECKPOINT).is_file():
            raise FileNotFoundError(f"{run}: no {CHECKPOINT} to resume from (it is written after each epoch)")
        config = Config.load(Path(run) / "config.json")
        config.out = run
        train(config, resume=True)

    return run_job(job)


def run_job(job) -> int:
    """0 when job() finishes; 2 with one line for bad input; 130 on Ctrl-C, or on SIGTERM (kill,
    a scheduler, a closing terminal), which stops the run the same way: the last checkpoint kept,
    the resume command printed."""
    from handnet.annotations import DatasetError

    def terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        job()
    except (DatasetError, ValueError, OSError, RuntimeError) as err:  # OSError: a missing file, a full disk
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def parse_seeds(items: list[str]) -> list[int]:
    """['0-3', '7'] -> [0, 1, 2, 3, 7]: whole numbers and inclusive ranges, each seed once, in order."""
    seeds = []
    for item in items:
        first, _, last = item.partition("-")
        if not (first.isdigit() and (last or first).isdigit()) or int(last or first) < int(first):
            raise ValueError(f"--seeds takes whole numbers and rising ranges such as 0-9, got '{item}'")
        seeds += range(int(first), int(last or first) + 1)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds names a seed twice: {' '.join(items)}")
    return seeds


def gestures_main(argv) -> int:
    parser = build_parser(GestureConfig, GESTURE_HELP, "python train.py gestures: " + __doc__)
    parser.add_argument("--compare", nargs="*", choices=GESTURE_LOSSES, metavar="LOSS",
                        help="train these losses (default: ce bce bce_na) on the same split into <out>/<loss>; "
                             "tabulate them")
    parser.add_argument("--seeds", nargs="+", metavar="S",
                        help="with --compare: repeat it on each seed (0-9, or a list), a fresh split and fresh "
                             "weights each, into <out>/s<seed>/<loss>; then compare the losses seed by seed "
                             "(study.md, study.json, operating.png; handnet/gesture_study.py)")
    args = vars(parser.parse_args(argv))
    compare, seeds = args.pop("compare"), args.pop("seeds")
    losses = tuple(dict.fromkeys(compare or GESTURE_LOSSES))  # each once, in the order given
    try:
        config = GestureConfig(**args)
        if seeds is not None:
            if compare is None:
                raise ValueError("--seeds repeats a comparison: add --compare (and the losses to compare)")
            seeds = parse_seeds(seeds)
            if len(losses) < 2:
                raise ValueError(f"--compare with --seeds needs two losses or more, got {losses[0]}")
    except ValueError as err:
        parser.error(str(err))
    if not config.out:
        kind = "study" if seeds else "compare" if compare is not None else config.loss
        config.out = f"runs/gestures-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"

    from handnet.gesture_study import run_study
    from handnet.gestures import compare_losses, train_gestures

    if seeds:
        return run_job(lambda: run_study(config, seeds, losses))
    return run_job(lambda: compare_losses(config, losses) if compare is not None else train_gestures(config))


if __name__ == "__main__":
    sys.exit(main())
