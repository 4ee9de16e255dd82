"""A gesture classifier of hand crops that can say "none of them" (`na`).

    python train.py gestures                                          # synthetic crops, bce_na
    python train.py gestures --data datasets/linto-gestures --loss bce_na --out runs/g-linto
    python train.py gestures --data datasets/linto-gestures --compare --out runs/g-compare
    python train.py gestures --data datasets/linto-gestures --compare ce bce_na --seeds 0-9 --out runs/g-study
    python train.py gestures --data datasets/linto-gestures --init-from runs/g-pre-fc/gestures.keras --out runs/g
    python train.py gestures --data datasets/linto-gestures --backbone fast --init-from models/handnet-fast-int8.tflite --out runs/g

The losses follow nexocode's "Classifying unknown gestures with modified loss function" (2020):

- `ce`: softmax and categorical cross-entropy, `na` one class among the others. Softmax must
  share all of its mass among the classes, so a gesture never seen lands in some known one.
- `bce`: sigmoid outputs and binary cross-entropy; each output is independent, `na` a class.
- `bce_na`: as `bce`, but an `na` example's target is all zeros, its own output included: an
  unknown gesture means "nothing is probable".

Every model has K + 1 outputs (the K known gestures, then `na`) and every one is read the same
way (handnet.metrics.decide_gestures): the top score wins unless it is under the threshold, which
means `na`. The threshold is picked on validation images and saved in config.json and the
exported .tflite. results.json holds known_accuracy, unknown_to_na and unseen_to_na; the unseen
gestures come from a folder never trained on; scores.npz keeps the scores they were read from
(handnet.gesture_study compares losses over many seeds with them). --init-from starts from another run's layers
(init_from_model), or with --backbone fast from a hand detector's: on a few hundred crops,
pretrained features matter more than the loss (docs/gestures.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from handnet.annotations import spread
from handnet.config import GESTURE_LOSSES, GestureConfig
from handnet.draw import plot_confusion
from handnet.gesture_data import (
    Example, ensure_synthetic_gestures, load_crop, load_gesture_folder, load_unseen_folder,
    make_gesture_dataset, split_examples, unseen_dir,
)
from handnet.metrics import (
    choose_gesture_threshold, confusion_matrix, decide_gestures, gesture_figures, open_set_figures,
)
from handnet.model import (
    UNFOLD_FRAMES, adopt_stem_channels, check_stem, conv_bn, fast_features, load_folded_weights, read_keras_model,
    stem_channels_of,
)
from handnet.training import CurvesCallback, StopOnCtrlC, prepare_run_folder

ARTICLE_THRESHOLD = 0.4  # the article's thresholded accuracy; reported next to the tuned one


def build_gesture_model(config: GestureConfig, outputs: int, k=keras) -> keras.Model:
    """image (B, S, S, 3) float32 BGR 0-255 -> scores (B, outputs) in [0, 1]: softmax for `ce`,
    sigmoid otherwise. The backbone, then global average pooling and dropout. Backbones: `small`,
    conv + batch-norm blocks down to S/8 of config.width, 2x and 4x its filters; `fast`, the
    detector's layers down to S/16 (model.fast_features), which a detector's weights can start."""
    side, width = config.input_side, config.width
    image = k.Input((side, side, 3), name="image")
    if config.backbone == "fast":
        _, x = fast_features(image, k, config.stem_channels)
    else:
        x = conv_bn(image, width, 3, 2, "g_stem", k)  # S/2; its batch-norm normalises the pixels
        x = conv_bn(x, width, 3, 1, "g2_b", k)
        x = conv_bn(x, 2 * width, 3, 2, "g4_a", k)  # S/4
        x = conv_bn(x, 2 * width, 3, 1, "g4_b", k)
        x = conv_bn(x, 4 * width, 3, 2, "g8_a", k)  # S/8
        x = conv_bn(x, 4 * width, 3, 1, "g8_b", k)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    x = k.layers.Dropout(0.3, name="dropout")(x)
    activation = "softmax" if config.loss == "ce" else "sigmoid"
    scores = k.layers.Dense(outputs, activation=activation, name="scores")(x)
    return k.Model(image, scores, name=f"handnet_gestures_{config.loss}")


def init_from_model(model: keras.Model, path: str | Path, crops=None) -> list[str]:
    """Copy into `model` the weights of every layer but `scores` from the model at `path`:
    another run's gestures.keras of the same backbone and width (its gestures, loss and input side
    may differ), features learnt on a larger gesture set; or, for the `fast` backbone, a hand
    detector (a run's model.keras, or an exported .tflite such as the shipped one, whose folded
    batch-norms are unfolded on `crops`, (N, S, S, 3) float32 training crops). Returns the names
    of the layers copied; ValueError when the file is not a compatible model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found (--init-from wants a run's gestures.keras, "
                                "or a detector's model.keras or .tflite)")
    if path.suffix == ".tflite":
        from handnet.export import read_conv_weights  # noqa: PLC0415

        _, weights = read_conv_weights(path)
        try:
            check_stem(model, stem_channels_of(weights))
            load_folded_weights(model, weights, crops)
        except ValueError as err:
            hint = "" if stem_channels_of(model) else "; a detector starts the `fast` backbone only (--backbone fast)"
            raise ValueError(f"{path}: cannot start this gesture model from it ({err}){hint}") from err
        return [layer.name for layer in model.layers if layer.weights and layer.name != "scores"]
    source = read_keras_model(path)
    try:
        check_stem(model, stem_channels_of(source))
    except ValueError as err:
        raise ValueError(f"{path}: cannot start this gesture model from it ({err})") from err
    sources = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in model.layers:
        if layer.name == "scores" or not layer.weights:
            continue
        other = sources.get(layer.name)
        if other is None:
            raise ValueError(f"{path}: has no layer '{layer.name}'; is it a handnet model of this backbone?")
        wanted = [tuple(w.shape) for w in layer.weights]
        found = [tuple(w.shape) for w in other.weights]
        if wanted != found:
            raise ValueError(f"{path}: layer '{layer.name}' has weights of shapes {found}, this model's are "
                             f"{wanted}; train with the same --width")
        layer.set_weights(other.get_weights())
        copied.append(layer.name)
    return copied


def gesture_targets(indices, known: int, loss: str) -> np.ndarray:
    """(N,) class indices (K = na) -> (N, K + 1) float32 targets: one-hot, except that `bce_na`
    gives na examples all zeros."""
    if loss not in GESTURE_LOSSES:
        raise ValueError(f"unknown gesture loss '{loss}' (choose from {', '.join(GESTURE_LOSSES)})")
    indices = np.asarray(indices, np.int64)
    targets = np.eye(known + 1, dtype=np.float32)[indices]
    if loss == "bce_na":
        targets[indices == known] = 0
    return targets


def get_gesture_loss(loss: str) -> keras.losses.Loss:
    """Keras' cross-entropies on probabilities: categorical for `ce`, binary averaged over the
    outputs for `bce` and `bce_na` (which differ in their targets, gesture_targets)."""
    if loss == "ce":
        return keras.losses.CategoricalCrossentropy(name="ce")
    if loss in ("bce", "bce_na"):
        return keras.losses.BinaryCrossentropy(name=loss)
    raise ValueError(f"unknown gesture loss '{loss}' (choose from {', '.join(GESTURE_LOSSES)})")


def predict_scores(model: keras.Model, examples: list[Example], side: int, batch_size: int = 64) -> np.ndarray:
    """(N, K + 1) float32 scores of the examples' images."""
    scores = []
    for start in range(0, len(examples), batch_size):
        batch = np.stack([load_crop(e.path, side) for e in examples[start : start + batch_size]]).astype(np.float32)
        scores.append(keras.ops.convert_to_numpy(model(batch, training=False)))
    return np.concatenate(scores) if scores else np.zeros((0, model.output_shape[-1]), np.float32)


def load_gesture_model(path: str | Path) -> tuple[keras.Model, GestureConfig]:
    """(keras.Model, GestureConfig) from a run's gestures.keras and the config.json beside it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    config_path = path.parent / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; every handnet model needs its config.json")
    return read_keras_model(path), GestureConfig.load(config_path)


def resolve_data(config: GestureConfig) -> tuple[Path, Path | None]:
    """(data folder, unseen folder or None): the synthetic set when data is empty; the unseen
    folder defaults to <data>-unseen where that exists."""
    data = Path(config.data) if config.data else ensure_synthetic_gestures()
    if config.unseen:
        return data, Path(config.unseen)
    return data, unseen_dir(data) if unseen_dir(data).is_dir() else None


def train_gestures(config: GestureConfig) -> dict:
    """Train, pick the threshold, evaluate, write results.json, confusion matrices and the int8
    .tflite into config.out; returns the results. DatasetError/ValueError for bad input."""
    keras.utils.set_random_seed(config.seed)
    data, unseen_root = resolve_data(config)
    skipped = [] if config.skip_bad else None
    known, examples = load_gesture_folder(data, config.na_name, skipped)
    unseen = load_unseen_folder(unseen_root, skipped) if unseen_root else []
    for problem in skipped or []:
        print(f"skipped {problem}")
    overlap = sorted({e.gesture for e in unseen} & set(known))
    if overlap:
        raise ValueError(f"unseen gestures must not be trained on, but {', '.join(overlap)} are in {data} too")
    classes = [*known, config.na_name]
    index = {name: i for i, name in enumerate(classes)}
    train, val = split_examples(examples, config.val_fraction, config.group_size, config.seed)
    print(f"{len(examples)} crops of {len(known)} gestures + {config.na_name} in {data}: {len(train)} train, "
          f"{len(val)} validation; {len(unseen)} unseen"
          + (f" ({', '.join(sorted({e.gesture for e in unseen}))} in {unseen_root})" if unseen else ""))
    if config.backbone == "fast" and config.init_from and Path(config.init_from).is_file():
        adopt_stem_channels(config, config.init_from, "--init-from")
    model = build_gesture_model(config, len(classes))
    if config.init_from:  # before the run folder, so a bad file leaves nothing behind
        crops = None  # what a detector file's folded batch-norms are unfolded on
        if config.init_from.endswith(".tflite"):
            crops = np.stack([load_crop(e.path, config.input_side) for e in spread(train, UNFOLD_FRAMES)])
        copied = init_from_model(model, config.init_from, crops)
        print(f"started from {config.init_from}: {len(copied)} layers copied, the scores layer new")
    run = prepare_run_folder(config.out, "gestures.keras")
    config.classes = classes
    config.data = str(data)
    config.unseen = str(unseen_root or "")
    config.save(run / "config.json")
    if skipped:
        (run / "skipped.txt").write_text("".join(f"{problem}\n" for problem in skipped))

    steps = max(1, len(train) // config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate * 0.1, decay_steps=steps * config.epochs, warmup_target=config.learning_rate,
        warmup_steps=min(steps, steps * config.epochs // 10),
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=get_gesture_loss(config.loss))
    targets = lambda items: gesture_targets([index[e.gesture] for e in items], len(known), config.loss)  # noqa: E731
    started = time.time()
    with StopOnCtrlC() as stop:
        model.fit(
            make_gesture_dataset(train, targets(train), config.input_side, config.batch_size, training=True,
                                 augment=config.augment, balance=config.balance, seed=config.seed,
                                 mix_unknowns=config.mix_unknowns, na_name=config.na_name),
            steps_per_epoch=steps, epochs=config.epochs, shuffle=False,  # the dataset shuffles itself
            validation_data=make_gesture_dataset(val, targets(val), config.input_side, config.batch_size,
                                                 training=False) if val else None,
            callbacks=[keras.callbacks.CSVLogger(str(run / "history.csv")),
                       CurvesCallback(run / "history.csv", run / "curves.png"), stop],
            verbose=2,
        )
    train_seconds = time.time() - started
    model.save(run / "gestures.keras")

    evaluated = val or train
    truth = np.array([index[e.gesture] for e in evaluated])
    scores = predict_scores(model, evaluated, config.input_side)
    if config.tune_threshold:
        config.threshold = choose_gesture_threshold(truth, scores, len(known), config.known_drop)
        config.save(run / "config.json")
    unseen_scores = predict_scores(model, unseen, config.input_side)
    np.savez(run / "scores.npz", truth=truth, scores=scores, unseen_scores=unseen_scores)  # read by gesture_study
    results = evaluate_scores(config, truth, scores, unseen, unseen_scores)
    results.update(train_seconds=round(train_seconds, 1), evaluated_on="validation" if val else "training",
                   counts={"train": len(train), "validation": len(val), "unseen": len(unseen)})
    save_confusions(results, run)
    if config.export:
        from handnet.export import export_gesture_model  # noqa: PLC0415

        tflite = export_gesture_model(model, config, run / "gestures-int8.tflite", train)
        results["int8"] = evaluate_tflite(tflite, config, evaluated, truth, unseen)
    results = strict_json(results)
    (run / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    print(format_results(results))
    print(f"run folder: {run}")
    return results


def evaluate_scores(config: GestureConfig, truth, scores, unseen: list[Example], unseen_scores) -> dict:
    """Figures and confusion matrices at config.threshold, plus the figures at the article's 0.4."""
    known = len(config.classes) - 1
    predicted = decide_gestures(scores, config.threshold)
    results = {"loss": config.loss, "classes": config.classes, "threshold": config.threshold,
               **gesture_figures(truth, predicted, known)}
    unseen_names = sorted({e.gesture for e in unseen})
    unseen_predicted = decide_gestures(unseen_scores, config.threshold) if unseen else np.zeros(0, np.int64)
    results["unseen_to_na"] = float(np.mean(unseen_predicted == known)) if unseen else None
    results.update(open_set_figures(truth, scores, unseen_scores, known))
    results["at_article_threshold"] = {
        **gesture_figures(truth, decide_gestures(scores, ARTICLE_THRESHOLD), known),
        "unseen_to_na": float(np.mean(decide_gestures(unseen_scores, ARTICLE_THRESHOLD) == known)) if unseen else None,
        "threshold": ARTICLE_THRESHOLD,
    }
    results["confusion"] = {
        "columns": config.classes,
        "validation": {"rows": config.classes,
                       "counts": confusion_matrix(truth, predicted, known + 1, known + 1).tolist()},
    }
    if unseen:
        rows = np.array([unseen_names.index(e.gesture) for e in unseen])
        results["confusion"]["unseen"] = {
            "rows": unseen_names,
            "counts": confusion_matrix(rows, unseen_predicted, len(unseen_names), known + 1).tolist(),
        }
    return results


def evaluate_tflite(path: Path, config: GestureConfig, evaluated: list[Example], truth, unseen: list[Example]) -> dict:
    """The exported file's figures through handnet.runtime, and how often its decision agrees
    with the Keras model's (on the same images)."""
    from handnet.runtime import GestureClassifier  # noqa: PLC0415

    classifier = GestureClassifier(path)
    scores = np.stack([classifier.scores(load_crop(e.path, config.input_side)) for e in evaluated])
    unseen_scores = (np.stack([classifier.scores(load_crop(e.path, config.input_side)) for e in unseen])
                     if unseen else np.zeros((0, len(config.classes)), np.float32))
    figures = evaluate_scores(config, truth, scores, unseen, unseen_scores)
    return {key: figures[key] for key in ("known_accuracy", "unknown_to_na", "unseen_to_na", "balanced_accuracy",
                                         "closed_set_accuracy", "unseen_auroc")}


def save_confusions(results: dict, run: Path) -> None:
    """confusion.json and confusion.png (validation, and unseen where there is an unseen set)."""
    confusion = results["confusion"]
    (run / "confusion.json").write_text(json.dumps(confusion, indent=2) + "\n")
    panels = [(f"validation ({results['loss']}, threshold {results['threshold']:g})",
               np.array(confusion["validation"]["counts"]), confusion["validation"]["rows"])]
    if "unseen" in confusion:
        panels.append(("unseen gestures", np.array(confusion["unseen"]["counts"]), confusion["unseen"]["rows"]))
    plot_confusion(panels, confusion["columns"], run / "confusion.png")


def strict_json(value):
    """`value` with every NaN float (a share of no examples: unknown_to_na without na crops) as
    None, so results.json is JSON that strict parsers read (null, not NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strict_json(item) for item in value]
    return value


def format_results(results: dict) -> str:
    figure = lambda key: "-" if results[key] is None else f"{results[key]:.3f}"  # noqa: E731
    return (f"{results['loss']}: known accuracy {figure('known_accuracy')}, unknown -> na "
            f"{figure('unknown_to_na')}, unseen -> na {figure('unseen_to_na')} "
            f"(threshold {results['threshold']:g}); without a threshold: closed-set accuracy "
            f"{figure('closed_set_accuracy')}, known vs unseen AUROC {figure('unseen_auroc')}")


def compare_losses(config: GestureConfig, losses=GESTURE_LOSSES) -> dict:
    """Train each loss on the same data and split (one seed) into config.out/<loss>; write
    comparison.json and comparison.md there. Returns {loss: results}."""
    out = Path(config.out)
    configs = {loss: dataclasses.replace(config, loss=loss, out=str(out / loss), classes=[])  # a bad loss fails
               for loss in losses}  # here, before any training
    table = {}
    for loss, loss_config in configs.items():
        print(f"=== {loss} ===")
        table[loss] = train_gestures(loss_config)
    (out / "comparison.json").write_text(json.dumps(table, indent=2) + "\n")
    (out / "comparison.md").write_text(comparison_markdown(table))
    print(comparison_markdown(table))
    return table


def comparison_markdown(table: dict) -> str:
    keys = ("known_accuracy", "unknown_to_na", "unseen_to_na", "balanced_accuracy", "closed_set_accuracy",
            "unseen_auroc")
    lines = ["| loss | threshold | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for loss, results in table.items():
        cells = ["-" if results[k] is None else f"{results[k]:.3f}" for k in keys]
        lines.append(f"| {loss} | {results['threshold']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
