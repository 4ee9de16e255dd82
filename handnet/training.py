"""One training run, from a Config to a run folder:

    runs/<name>/config.json      written before training starts, then with the tuned threshold and radius knots
    runs/<name>/checkpoints/last.npz  weights, optimizer state and epoch count after every epoch
    runs/<name>/prepared/        while training only: the examples, made once (data.PreparedExamples)
    runs/<name>/history.csv      loss per epoch (with the every-hand head: the total, and heatmap_loss)
    runs/<name>/curves.png       training and validation loss
    runs/<name>/model.keras      the trained network, heatmap output only (written atomically at the end)
    runs/<name>/metrics.json     validation precision, recall, F1 (cross-fitted: finish_run), AP, near and far
    runs/<name>/val_samples.png  validation images | targets | predictions
    runs/<name>/model-int8.tflite  the int8 deliverable for handnet.runtime (unless export is off)
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from handnet.annotations import (
    NATIVE_FILE, DatasetError, Sample, group_indices, load_samples, split_samples, spread, train_val_split,
)
from handnet.atomic import partial_file
from handnet.config import Config
from handnet.data import PreparedExamples, letterboxed_input, make_dataset, make_example
from handnet.distribute import (
    fit_multiworker, is_chief, make_strategy, resolve_precision, set_precision, shard_by_data,
)
from handnet.draw import draw_hands, heatmap_to_bgr, plot_curves, save_grid
from handnet.evaluate import (
    TASKS, best_threshold, cross_fit, fit_radius_knots, format_metrics, heatmap_detections, match_samples_tflite,
    label_threshold, match_task, predict_samples, task_threshold,
)
from handnet.export import export_model
from handnet.letterbox import fit_letterbox
from handnet.metrics import evaluate_matches, f1_interval
from handnet.losses import training_loss
from handnet.model import (
    UNFOLD_FRAMES, adopt_stem_channels, build_model, check_init_file, check_size, copy_weights, load_init_weights,
    with_teacher, with_training_heads,
)
from handnet.synthetic import dense_train_count, generate_dataset, generator_record

SYNTHETIC_DIR = Path("datasets/synthetic")
CHECKPOINT = Path("checkpoints") / "last.npz"
PREPARED = "prepared"  # the examples read back during training (data.PreparedExamples), removed after it
TUNE_IMAGES = 300  # training images the score threshold is tuned on where there are no validation ones


def synthetic_dir(config: Config) -> Path:
    """Where the built-in set for this config's seed, scene count and input size lives:
    datasets/synthetic for the defaults, else a folder named after what differs (for example
    datasets/synthetic-seed1-n12000), so that runs with other settings never regenerate, under
    another run's feet, the set a default run trains and is evaluated on."""
    defaults = Config()  # the default run's set
    parts = [f"seed{config.seed}" if config.seed != defaults.seed else "",
             f"n{config.synthetic_count}" if config.synthetic_count != defaults.synthetic_count else "",
             "x".join(map(str, config.input_size)) if tuple(config.input_size) != tuple(defaults.input_size) else "",
             "plain" if not config.dense_scenes else "",
             f"val{config.val_fraction:g}" if config.dense_scenes and config.val_fraction != defaults.val_fraction else ""]
    return SYNTHETIC_DIR.with_name("-".join([SYNTHETIC_DIR.name, *filter(None, parts)]))


def ensure_synthetic(config: Config, root: Path) -> Path:
    """The built-in set: generated once, regenerated if its generator, count, size, seed or split
    changed."""
    dense_train = dense_train_count(config.synthetic_count, config.val_fraction) if config.dense_scenes else 0
    wanted = generator_record(config.seed, config.synthetic_count, config.input_size, dense_train)
    index = root / NATIVE_FILE
    if index.is_file():
        try:
            if json.loads(index.read_text()).get("generator") == wanted:
                return root
        except json.JSONDecodeError:
            pass
    print(f"generating {config.synthetic_count} synthetic scenes into {root}")
    return generate_dataset(root, config.synthetic_count, config.input_size, config.seed, dense_train=dense_train)


def prepare_run_folder(out: str, model_file: str = "model.keras", resume: bool = False) -> Path:
    run = Path(out)
    if (run / model_file).exists():
        raise FileExistsError(f"{run}: already holds a trained model; choose another --out")
    if (run / CHECKPOINT).exists() and not resume:
        raise FileExistsError(f"{run}: holds an interrupted run; continue it with python train.py --resume {run}, "
                              "or choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    return run


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, everything a resumed run needs (see save_checkpoint)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        save_checkpoint(self.model, epoch + 1, self.path)


def save_checkpoint(model: keras.Model, epochs_done: int, path: Path) -> None:
    """Model weights (batch-norm statistics included), optimizer state (its step count drives the
    learning-rate schedule) and the number of finished epochs, in one .npz that replaces the
    previous one only once it is completely written."""
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    arrays |= {f"optimizer_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.optimizer.variables)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, epochs_done=np.array(epochs_done), **arrays)
    os.replace(tmp, path)


def load_checkpoint(model: keras.Model, path: Path) -> int:
    """Restore what save_checkpoint wrote into a compiled model; returns the epochs done."""
    with np.load(path) as data:
        model.set_weights([data[f"weight_{i}"] for i in range(len(model.weights))])
        model.optimizer.build(model.trainable_variables)
        for i, variable in enumerate(model.optimizer.variables):
            variable.assign(data[f"optimizer_{i}"])
        return int(data["epochs_done"])


def keep_history_rows(history_csv: Path, epochs: int) -> None:
    """Cut the CSV log back to its first `epochs` rows, so a resumed run's curve joins up."""
    if history_csv.is_file():
        lines = history_csv.read_text().splitlines(keepends=True)
        history_csv.write_text("".join(lines[: epochs + 1]))


class StopOnCtrlC(keras.callbacks.Callback):
    """Ctrl-C during model.fit, turned into a KeyboardInterrupt at the next batch end. Python
    raises KeyboardInterrupt wherever the main thread is when the signal comes, and inside a
    weakref or __del__ callback (TensorFlow runs many) it is printed and dropped, so the run would
    go on to the end. Here the handler only takes note and the callback raises in plain code; a
    second Ctrl-C before that raises at once. SIGTERM (kill, a cluster's scheduler, a closing
    terminal; the signal a script's background job still gets) is taken the same way. Used as a
    context manager around fit, main thread only; a process that ignores SIGINT goes on ignoring it."""

    def __init__(self):
        super().__init__()
        self.pressed, self.previous = False, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self.previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _note(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def _raise_if_pressed(self, *args, **kwargs):
        if self.pressed:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _raise_if_pressed


class CurvesCallback(keras.callbacks.Callback):
    """Redraws curves.png after every epoch, so a long run can be watched."""

    def __init__(self, history_csv: Path, png: Path):
        super().__init__()
        self.history_csv, self.png = history_csv, png

    def on_epoch_end(self, epoch, logs=None):
        plot_curves(self.history_csv, self.png)


def train(config: Config, resume: bool = False) -> dict:
    """Train, save and evaluate; returns the validation metrics. Raises DatasetError and
    ValueError for bad input before anything is written. resume: continue the interrupted run in
    config.out from its last checkpoint, with the same optimizer state, schedule and data order."""
    keras.utils.set_random_seed(config.seed)
    check_size(config.preset, config.input_size, "--input-size")
    if config.crop_size:
        check_size(config.preset, config.train_size, "--crop-size")
    if config.distill_from and not os.path.isfile(config.distill_from):
        raise FileNotFoundError(f"--distill-from: no such file '{config.distill_from}' (a run's model.keras)")
    if config.init and not resume:
        check_init_file(config.init)  # before the run folder is written
        adopt_stem_channels(config, config.init, "--init")
    strategy = make_strategy(config.strategy)
    chief = is_chief()
    train_samples, distinct_train, val_samples, skipped = load_training_data(config, chief)
    # A head with nothing to learn from would only tug at the features.
    if config.openness_weight > 0 and not any(h.role == "ignore" for s in distinct_train for h in s.hands):
        print("no other (ignore) hands among the training images: no openness map (openness_weight 0)")
        config.openness_weight = 0.0
    if config.negative_weight > 0 and not any(h.role == "negative" for s in distinct_train for h in s.hands):
        print("no negatives among the training images: no negatives head (negative_weight 0)")
        config.negative_weight = 0.0
    if config.segment_weight > 0 and not any(s.mask for s in distinct_train):
        print("no label masks among the training images: no segmentation head (segment_weight 0)")
        config.segment_weight = 0.0
    # Non-chief workers of a cluster train their share and write nothing.
    run = prepare_run_folder(config.out, resume=resume) if chief else Path(tempfile.mkdtemp(prefix="handnet-worker-"))
    if skipped:
        (run / "skipped.txt").write_text("".join(f"{problem}\n" for problem in skipped))
    if not resume:
        config.save(run / "config.json")
    steps = max(1, len(train_samples) // config.batch_size)
    if strategy.num_replicas_in_sync > 1:
        print(f"training on {strategy.num_replicas_in_sync} replicas ({config.strategy}), "
              f"global batch {config.batch_size}" + ("" if chief else "; the chief writes the run folder"))
    precision = resolve_precision(config.precision)
    if precision != "float32":
        why = " (auto: this CPU multiplies it natively)" if config.precision == "auto" else ""
        print(f"training in {precision}{why}")
    set_precision(precision)
    try:
        frames = None if resume else init_frames(config, distinct_train)
        model, done = compile_model(config, strategy, steps, run / CHECKPOINT if resume else None, frames)
        started = time.time()
        run_epochs(model, config, strategy, run, train_samples, val_samples, steps, done, chief)
        print(f"trained {config.epochs - done} epochs in {time.time() - started:.0f} s")
        if not chief:
            shutil.rmtree(run, ignore_errors=True)
            return {}
        model = plain_copy(model, config)  # the training-only heads come off here
    finally:
        set_precision("float32")  # the process-wide policy never outlives the run, failed or not
    return finish_run(model, config, run, distinct_train, val_samples or distinct_train, started,
                      "validation" if val_samples else "training (no validation split)", precision)


def load_training_data(config: Config, chief: bool = True):
    """(training samples with repeats, distinct training samples, validation samples, skipped
    problems or None); generates the synthetic set first where config.data names it or is empty."""
    # The built-in set, alone or mixed with real folders: named as datasets/synthetic, saved in
    # config.json under the folder of this run's settings (a resumed run names that one).
    builtin = synthetic_dir(config)
    def named(folder):
        return str(builtin) if Path(folder) in (SYNTHETIC_DIR, builtin) else folder

    config.data = [named(d) for d in config.data or [SYNTHETIC_DIR]]
    config.tune_on = [named(d) for d in config.tune_on]
    if chief and str(builtin) in config.data:
        ensure_synthetic(config, builtin)
    skipped = [] if config.skip_bad else None
    samples = load_samples(config.data, config.labels, skipped=skipped)
    for problem in skipped or []:
        print(f"skipped {problem}")
    distinct_train, val_samples = train_val_split(samples, config.val_fraction, config.group_size, config.seed)
    print(f"{len(samples)} images: {len(distinct_train)} train, {len(val_samples)} validation "
          f"({sum(len(s.hands) for s in samples)} hands)" + (f"; {len(skipped)} bad file(s) skipped" if skipped else ""))
    roles = collections.Counter((h.label, h.role) for s in samples for h in s.hands)
    print("labels: " + ", ".join(f"{label} {count} ({role})" for (label, role), count in sorted(roles.items())))
    train_samples = distinct_train
    if config.data_repeats:
        train_samples = repeat_by_folder(distinct_train, config.data, config.data_repeats)
        print(f"{len(train_samples)} training images per epoch with repeats "
              + ", ".join(f"{root} x{times}" for root, times in zip(config.data, config.data_repeats)))
    if config.crops_per_image > 1:
        train_samples = train_samples * config.crops_per_image  # the stream shuffles them apart
        print(f"{len(train_samples)} training crops per epoch: {config.crops_per_image} per image")
    return train_samples, distinct_train, val_samples, skipped


def init_frames(config: Config, samples: list[Sample]) -> np.ndarray | None:
    """(N, H, W, 3) float32 letterboxed training images on which the folded batch-norms of an
    exported --init file are unfolded (handnet.model.load_init_weights); None for other inits."""
    if not config.init.endswith(".tflite"):
        return None
    frames = [letterboxed_input(sample, config)[0] for sample in spread(samples, UNFOLD_FRAMES)]
    return np.stack(frames).astype(np.float32)


def compile_model(config: Config, strategy, steps: int, checkpoint: Path | None = None,
                  frames=None) -> tuple[keras.Model, int]:
    """The network, compiled with Adam on a warm-up + cosine schedule over the whole run, inside
    the strategy's scope; restored from `checkpoint` when resuming, else started from config.init
    if set (frames: init_frames, for an exported .tflite). Returns (model, epochs done)."""
    with strategy.scope():
        model = build_model(config, flexible=True)  # crops in training, whole frames in evaluation
        if config.init and checkpoint is None:
            load_init_weights(model, config.init, frames)
            print(f"starting from the weights of {config.init}")
        model = with_training_heads(model, [name for name, _, _ in config.training_heads])
        if config.distill_from:
            model = with_teacher(model, load_teacher(config.distill_from))
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate * 0.1, decay_steps=steps * config.epochs, warmup_target=config.learning_rate,
            warmup_steps=min(steps, steps * config.epochs // 10),
        )
        # Several steps per call cut Keras' per-step Python overhead, large next to a small CPU step;
        # Keras 3.15's multi-step loop fails under tf.distribute (placeholder error), hence 1 there.
        loss, metrics = training_loss(config)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics,
                      steps_per_execution=4 if strategy.num_replicas_in_sync == 1 else 1)
        done = load_checkpoint(model, checkpoint) if checkpoint is not None else 0
    return model, done


def run_epochs(model: keras.Model, config: Config, strategy, run: Path, train_samples, val_samples, steps: int,
               done: int, chief: bool) -> None:
    """fit_epochs on the samples' examples, prepared first in the run folder when config.prepare
    (and not augment); the prepared files go when training ends, whichever way it ends. On
    Ctrl-C, while preparing or training, says how to resume and re-raises KeyboardInterrupt."""
    if done:
        keep_history_rows(run / "history.csv", done)
        print(f"resuming {run} after epoch {done} of {config.epochs}")
    prepared_dir = run / PREPARED
    shutil.rmtree(prepared_dir, ignore_errors=True)  # one that a killed run left
    try:
        if config.epoch_val_images:
            val_samples = spread(val_samples, config.epoch_val_images)
        train_prepared = val_prepared = None
        if config.prepare and not config.augment:
            train_prepared = PreparedExamples(train_samples, config, prepared_dir / "train", "preparing training images")
            if val_samples:
                val_prepared = PreparedExamples(val_samples, config, prepared_dir / "val", "preparing validation images")
        training = shard_by_data(make_dataset(train_samples, config, training=True,
                                              skip=done * steps * config.batch_size, prepared=train_prepared))
        validation = make_dataset(val_samples, config, training=False, prepared=val_prepared) if val_samples else None
        fit_epochs(model, config, strategy, run, training, validation, steps, done, chief)
    except KeyboardInterrupt:
        if (run / CHECKPOINT).exists():
            plot_curves(run / "history.csv", run / "curves.png")
            print(f"\ninterrupted; {run / CHECKPOINT} holds the last finished epoch. "
                  f"Continue with: python train.py --resume {run}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(prepared_dir, ignore_errors=True)


def fit_epochs(model: keras.Model, config: Config, strategy, run: Path, training, validation, steps: int,
               done: int, chief: bool) -> None:
    """Epochs done+1 .. config.epochs, logging, plotting and checkpointing each one."""
    history_csv = run / "history.csv"
    # In this order: a checkpoint exists only once its epoch is in the log.
    callbacks = [keras.callbacks.CSVLogger(str(history_csv), append=done > 0),
                 CurvesCallback(history_csv, run / "curves.png"), EpochCheckpoint(run / CHECKPOINT)]
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        fit_multiworker(model, model.loss, strategy, training, validation, steps, config.epochs, done,
                        callbacks, chief)
        return
    with StopOnCtrlC() as stop:
        model.fit(
            training,
            steps_per_epoch=steps,
            initial_epoch=done,
            epochs=config.epochs,
            validation_data=shard_by_data(validation) if validation is not None else None,
            callbacks=[*callbacks, stop],
            shuffle=False,  # the dataset shuffles itself
            verbose=1 if sys.stdout.isatty() else 2,
        )


def finish_run(model: keras.Model, config: Config, run: Path, distinct_train, evaluated, started: float,
               evaluated_on: str, precision: str = "float32") -> dict:
    """Save model.keras, tune the score threshold and fit radius knots, measure the `evaluated`
    images, draw val_samples.png, export int8 and write metrics.json. Returns the metrics.
    precision: the arithmetic it trained in, recorded in metrics.json.

    The threshold is the best F1 on the validation images, and the figures stay honest by
    two-fold cross-fitting: each half of them is scored at the best threshold of the other half.
    Training images are no guide to it: a network that has memorised a few frames scores them
    higher than any new one. Only without a usable validation split (none, or too few groups or
    hands for two halves) is it tuned on training images."""
    save_model_atomic(model, run / "model.keras")
    if config.tune_threshold:
        config.radius_knots = []  # fitted on detections with uncalibrated radii
    predicted = heatmaps_of(model, evaluated, config)
    cuts, halves, task_cuts = None, None, {}
    if config.tune_threshold:
        first = two_folds(evaluated, config) if evaluated_on == "validation" else None
        if first is None:
            tuning = heatmaps_of(model, spread(distinct_train, TUNE_IMAGES), config)
            source = f"{len(tuning)} training images"
        else:
            tuning, source = predicted, f"the {len(predicted)} validation images"
        found = detections_of(tuning, config)
        chosen = tuned_on(config, [sample for sample, _, _ in found])
        if config.tune_on and not has_hands_to_find([sample for (sample, _, _), c in zip(found, chosen) if c]):
            print(f"no hands to find among the {source} from {', '.join(config.tune_on)}: tuned on all of them")
            chosen = [True] * len(found)
        # With a hand map, the every-hand map's threshold first (which hands are reported), then the
        # open score's among the hands it reports: with an openness map, the one that labels them
        # best (the open-hands figures ignore other hands, so they cannot say how it labels them).
        for task in ("every", "open") if config.deploys_hand_map else ("open",):
            tuned = matches_of(found, config, task)
            if task == "open" and len(config.map_channels) > 2:
                pick = lambda keep: label_threshold(found, config, keep)  # noqa: E731
            else:
                pick = lambda keep: best_threshold([m for m, k in zip(tuned, keep) if k])  # noqa: E731
            setattr(config, "open_threshold" if task == "open" and config.deploys_hand_map else "score_threshold",
                    pick(chosen))
            if first is not None:
                task_cuts[task] = cross_fit(pick, first, chosen)
        if not all(chosen):
            source = f"{sum(chosen)} of {source} ({', '.join(config.tune_on)})"
        config.radius_knots = fit_radius_knots(found, config)
        config.save(run / "config.json")
        opened = f", open threshold {config.open_threshold:g}" if config.deploys_hand_map else ""
        print(f"score threshold {config.score_threshold:g}{opened} (best F1 on {source}); radius factors "
              f"{config.radius_knots[1] if config.radius_knots else 'none (too few hands)'} at radii "
              f"{config.radius_knots[0] if config.radius_knots else '-'} px")
        if first is not None:
            cuts, halves = task_cuts["open"]
    found = detections_of(predicted, config)
    per_image = matches_of(found, config)
    metrics = evaluate_matches(per_image, task_threshold(config, "open"), cuts)
    if config.deploys_hand_map:
        every_cuts = task_cuts["every"][0] if "every" in task_cuts else None
        metrics["every_hand"] = evaluate_matches(matches_of(found, config, "every"), config.score_threshold, every_cuts)
    interval = f1_interval(per_image, task_threshold(config, "open"), group_indices(evaluated, config.group_size),
                           cuts, seed=config.seed)
    if interval:
        metrics["f1_interval"] = [round(v, 4) for v in interval]  # 95%, resampling groups of files
    metrics["threshold_tuned_on"] = None if not config.tune_threshold else "validation" if cuts else "training"
    if config.tune_threshold and config.tune_on:
        metrics["threshold_folders"] = config.tune_on
    if halves:
        metrics["half_thresholds"] = list(halves)  # the figures: each half at the other's best threshold
    metrics["train_seconds"] = round(time.time() - started, 1)
    metrics["evaluated_on"] = evaluated_on
    metrics["train_precision"] = precision
    if len(config.data) > 1:
        metrics["per_dataset"] = {}
        for root in config.data:
            part = [k for k, sample in enumerate(evaluated) if _under(sample.path, root)]
            metrics["per_dataset"][root] = evaluate_matches([per_image[k] for k in part], task_threshold(config, "open"),
                                                            None if cuts is None else [cuts[k] for k in part])
    save_val_samples(model, evaluated, config, run / "val_samples.png")
    print(format_metrics(metrics))
    if config.export:
        metrics["int8"] = export_int8(model, config, run, evaluated, cuts)
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for root, figures in metrics.get("per_dataset", {}).items():
        print(f"{root}: {_figures_line(figures)} ({figures['images']} images, {figures['hands']} hands)")
    print(f"run folder: {run}")
    return metrics


def tuned_on(config: Config, samples: list[Sample]) -> list[bool]:
    """Whether the score threshold is tuned on each sample: those under config.tune_on, or all."""
    return [not config.tune_on or any(_under(s.path, root) for root in config.tune_on) for s in samples]


def has_hands_to_find(samples: list[Sample]) -> bool:
    return any(h.role == "positive" for s in samples for h in s.hands)


def two_folds(samples: list[Sample], config: Config) -> list[bool] | None:
    """Whether each sample is in the first of two halves, split by groups of consecutive files as
    the validation split is; None where either half would have no groups or no positive hands
    (among the images the threshold is tuned on)."""
    try:
        first, second = split_samples(samples, 0.5, config.group_size, config.seed)
    except DatasetError:
        return None
    if not all(has_hands_to_find([s for s, c in zip(half, tuned_on(config, half)) if c]) for half in (first, second)):
        return None
    in_first = {s.path for s in first}
    return [s.path in in_first for s in samples]


def heatmaps_of(model, samples: list[Sample], config: Config) -> list:
    """[(sample, frame (H, W), heatmap)] of one prediction pass; frames are not kept."""
    return [(sample, frame.shape[:2], heatmap) for sample, frame, heatmap, _ in predict_samples(model, samples, config)]


def matches_of(found, config: Config, task: str = "open") -> list:
    """match_image results of a task (evaluate.TASKS) of [(sample, frame (H, W), detections)]."""
    return [match_task(detections, sample, frame_hw, task, config) for sample, frame_hw, detections in found]


def detections_of(predicted, config: Config) -> list:
    """[(sample, frame (H, W), heatmap)] -> [(sample, frame (H, W), detections)] under config's
    radius knots."""
    return [(sample, frame_hw, heatmap_detections(heatmap, fit_letterbox(frame_hw, config.input_size), config))
            for sample, frame_hw, heatmap in predicted]


def load_teacher(path: str) -> keras.Model:
    """The detector at `path` (a run's model.keras) rebuilt for any input size under the current
    precision policy, its weights copied: Config.distill_from's teacher. ValueError unless it
    deploys the open, hand and openness maps."""
    from handnet.evaluate import load_model  # noqa: PLC0415

    trained, teacher_config = load_model(path)
    if len(teacher_config.map_channels) != 3:
        raise ValueError(f"--distill-from {path}: it gives {', '.join(teacher_config.map_channels)}; a teacher "
                         "needs the open, hand and openness maps")
    teacher = build_model(dataclasses.replace(teacher_config, backbone_weights="none"), flexible=True)
    copy_weights(trained, teacher)
    print(f"distilling from {path} ({teacher_config.preset} preset)")
    return teacher


def plain_copy(model: keras.Model, config: Config) -> keras.Model:
    """The trained network as deployed (the training-only heads off, the hand map kept where the
    config has one), a float32 model outside any distribution strategy: what is saved, evaluated
    and exported, the same whichever way it was trained."""
    set_precision("float32")
    plain = build_model(config, flexible=True)
    copy_weights(model, plain)
    return plain


def export_int8(model, config: Config, run: Path, evaluated, cuts=None) -> dict:
    """Write model-int8.tflite and measure it on the same images, and at the same thresholds
    (cuts: evaluate_matches), as the Keras model."""
    path = export_model(model, config, "int8", run / "model-int8.tflite")
    matched = match_samples_tflite(path, evaluated, config, tasks=TASKS)
    figures = evaluate_matches(matched["open"], task_threshold(config, "open"), cuts)
    print(f"int8 export {path} ({path.stat().st_size / 1024:.0f} KiB): {_figures_line(figures)}")
    kept = {key: figures[key] for key in ("precision", "recall", "f1", "ap", "hands")}
    if config.deploys_hand_map:
        every = evaluate_matches(matched["every"], config.score_threshold)
        print(f"int8 every hand: {_figures_line(every)}")
        kept["every_hand"] = {key: every[key] for key in ("precision", "recall", "f1", "ap", "hands")}
    return kept


def _figures_line(figures: dict) -> str:
    """'P 0.700 R 0.516 F1 0.594 AP 0.638', with '-' for figures that do not exist."""
    return " ".join(f"{key} {'-' if figures[k] is None else format(figures[k], '.3f')}"
                    for key, k in (("P", "precision"), ("R", "recall"), ("F1", "f1"), ("AP", "ap")))


def repeat_by_folder(samples: list[Sample], roots: list[str], repeats) -> list[Sample]:
    """The samples under roots[i] repeats[i] times each, in the original order; samples under
    no root (or under several: the first counts) appear once."""
    out = []
    for sample in samples:
        times = next((n for root, n in zip(roots, repeats) if _under(sample.path, root)), 1)
        out.extend([sample] * times)
    return out


def _under(path: str, root: str) -> bool:
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def save_model_atomic(model: keras.Model, path: Path) -> None:
    tmp = partial_file(path)
    model.save(tmp)
    os.replace(tmp, path)


def save_val_samples(model, samples, config: Config, path: Path, count: int = 6) -> None:
    """A PNG of rows: letterboxed image with hands | target heatmap | predicted heatmap (and with a
    hand map, the predicted every-hand map)."""
    picked = [samples[i] for i in np.linspace(0, len(samples) - 1, min(count, len(samples))).astype(int)]
    rows = []
    for sample, frame, heatmap, detections in predict_samples(model, picked, config):
        image, y_true = make_example(sample, config)
        shown = [d for d in detections if d.score >= config.score_threshold]
        rows.append([
            draw_hands(frame, sample.hands, shown),
            heatmap_to_bgr(y_true[..., 0], frame.shape[:2], y_true[..., 1]),
            *(heatmap_to_bgr(channel, frame.shape[:2]) for channel in np.moveaxis(np.atleast_3d(heatmap), -1, 0)),
        ])
    # Frames differ in size across datasets: bring every tile to the first one's size.
    h, w = rows[0][0].shape[:2]
    rows = [[cv2.resize(tile, (w, h)) for tile in row] for row in rows]
    save_grid(path, rows)
