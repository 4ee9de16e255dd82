"""Gesture data: image folders, crops cut from detection datasets, and the classifier's tf.data.

    python -m handnet.gesture_data synthetic --out datasets/synthetic-gestures
    python -m handnet.gesture_data crops --data ../shared/datasets/linto-webcam-gestures \\
        --gestures hello,vectory,iloveyou,callme --unseen okay,handup,thanks --out datasets/linto-gestures \\
        --detector models/handnet-fast-int8.tflite
    python -m handnet.gesture_data regroup --data ../shared/datasets/sign-language-digits \\
        --gestures 0,1,2 --unseen 5,6 --out datasets/digits
    python -m handnet.gesture_data merge --data datasets/fc-gestures datasets/digits-all \\
        --prefix fc_ digit_ --out datasets/pretrain-gestures

The layout: a folder holds one sub-folder of images per known gesture, plus `na/` (the name is
configurable) with images of gestures the game does not know, trained as "none of them". An
unseen folder (`<out>-unseen` by default) holds one sub-folder per gesture that is never trained
on and must still come out `na`. `crops` cuts every hand of a box-annotated dataset (any format
handnet.annotations reads) into that layout with handnet.crops' framing: labels listed in
--gestures become gestures, those in --unseen go to the unseen folder, all others to `na/`;
with --detector, each hand the detector finds gets a second crop framed as infer.py frames it.
`regroup` does the same for a dataset that is one image folder per gesture already. `merge`
pools several such folders into one, with a prefix per folder to keep their gestures apart (a
larger set to pretrain on, for `train.py gestures --init-from`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from handnet.annotations import DETECTED_SUFFIX, IMAGE_SUFFIXES, DatasetError, load_samples, read_image, split_samples
from handnet.atomic import building_folders
from handnet.config import parse_names
from handnet.crops import crop_hand, fit_square
from handnet.metrics import nearest_within_reach

SYNTHETIC_GESTURES_DIR = Path("datasets/synthetic-gestures")
DETECTED_MIN_SCORE = 0.1  # the weakest detection that still frames a hand's second crop


@dataclasses.dataclass(frozen=True)
class Example:
    path: str  # an image file
    gesture: str  # its folder name; the na folder's name for unknown gestures


def unseen_dir(root: str | os.PathLike) -> Path:
    """Where `crops` and the synthetic set put unseen gestures next to `root`."""
    root = Path(root)
    return root.with_name(root.name + "-unseen")


def load_gesture_folder(root: str | os.PathLike, na_name: str = "na",
                        skipped: list | None = None) -> tuple[list[str], list[Example]]:
    """(known gesture names sorted, examples) of a folder with one sub-folder per gesture.
    The `na_name` sub-folder is optional; its examples carry gesture == na_name. Every crop is
    read once: DatasetError names the first that cannot be, or with a `skipped` list each such
    error is appended to it and the crop left out."""
    root = Path(root)
    folders = image_folders(root)
    known = sorted(name for name in folders if name != na_name)
    if not known:
        raise DatasetError(f"{root}: no gesture folders (expected one sub-folder of images per gesture"
                           f"{f', plus {na_name}/' if na_name else ''})")
    return known, readable_examples(root, folders, skipped)


def load_unseen_folder(root: str | os.PathLike, skipped: list | None = None) -> list[Example]:
    """Examples of a folder with one sub-folder per unseen gesture, checked as load_gesture_folder's."""
    folders = image_folders(Path(root))
    if not folders:
        raise DatasetError(f"{root}: no gesture folders with images")
    return readable_examples(root, folders, skipped)


def readable_examples(root, folders: dict[str, list[Path]], skipped: list | None) -> list[Example]:
    """The examples of every crop in `folders` that decodes (a zero-byte or junk crop would
    otherwise stop training midway, inside the input pipeline)."""
    examples = []
    for name in sorted(folders):
        for path in folders[name]:
            try:
                read_image(path)
            except DatasetError as err:
                if skipped is None:
                    raise DatasetError(f"{err} (--skip-bad leaves such crops out)") from None
                skipped.append(err)
                continue
            examples.append(Example(str(path), name))
    if not examples:
        raise DatasetError(f"{root}: no readable crops (every one was skipped)")
    return examples


def image_folders(root: Path) -> dict[str, list[Path]]:
    """{sub-folder name: its images, sorted} for every sub-folder of `root` holding images."""
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    folders = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            folders[sub.name] = images
    return folders


def split_examples(examples: list[Example], val_fraction: float, group_size: int, seed: int):
    """(train, val), per gesture, by runs of consecutive files (annotations.split_samples), so
    near-duplicate frames of one recording stay on one side."""
    train, val = [], []
    for gesture in sorted({e.gesture for e in examples}):
        t, v = split_samples([e for e in examples if e.gesture == gesture], val_fraction, group_size, seed)
        train += t
        val += v
    return train, val


def load_crop(path: str, side: int) -> np.ndarray:
    """(side, side, 3) uint8 BGR of one example image."""
    return fit_square(read_image(path), side)


def make_gesture_dataset(examples: list[Example], targets: np.ndarray, side: int, batch_size: int,
                         training: bool, augment: bool = True, balance: bool = True, seed: int = 0,
                         mix_unknowns: float = 0.0, na_name: str = "na"):
    """tf.data of (image (side, side, 3) float32 BGR 0-255, target row of `targets`), batched.

    Training repeats and shuffles, augments (augment_crop) unless augment is False, and with
    balance draws every gesture, na included, equally often: na usually pools several gestures
    and outnumbers each known one, and a network that meets it half the time sits at "always na"
    for many epochs. With mix_unknowns > 0, that share of the na draws shows a made-up gesture
    instead (mix_crops: parts of two different known gestures), still with the na target, so the
    unknowns vary more than the few gestures recorded for them. Repeatable by seed.
    """
    import tensorflow as tf  # noqa: PLC0415

    paths = [e.path for e in examples]
    targets = np.asarray(targets, np.float32)
    by_gesture: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        by_gesture.setdefault(e.gesture, []).append(i)
    known = sorted(g for g in by_gesture if g != na_name)
    mixing = training and mix_unknowns > 0
    if mixing and len(known) < 2:
        raise ValueError(f"mix_unknowns needs two known gestures to mix, got {len(known)}")

    def load(index, draw):
        rng = np.random.default_rng([seed, int(draw)])
        if mixing and examples[int(index)].gesture == na_name and rng.random() < mix_unknowns:
            first, second = rng.choice(len(known), 2, replace=False)
            image = mix_crops(rng, load_crop(paths[rng.choice(by_gesture[known[first]])], side),
                              load_crop(paths[rng.choice(by_gesture[known[second]])], side))
        else:
            image = load_crop(paths[int(index)], side)
        if training and augment:
            image = augment_crop(rng, image)
        return image.astype(np.float32)

    def tf_load(index, draw):
        image = tf.numpy_function(load, [index, draw], tf.float32)
        image.set_shape((side, side, 3))
        return image, tf.gather(targets, index)

    if not training:
        indices = tf.data.Dataset.range(len(paths))
    elif balance:
        per_gesture = [
            tf.data.Dataset.from_tensor_slices(np.array(by_gesture[g], np.int64))
            .shuffle(len(examples), seed=seed + k, reshuffle_each_iteration=True).repeat()
            for k, g in enumerate(sorted(by_gesture))
        ]
        indices = tf.data.Dataset.sample_from_datasets(per_gesture, seed=seed)
    else:
        indices = tf.data.Dataset.range(len(paths)).shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = tf.data.Dataset.zip(indices, tf.data.Dataset.counter()).map(tf_load, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def mix_crops(rng, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A made-up gesture: `first` left of a random, roughly upright line near the crop's centre,
    `second` right of it (or the other way round). Crops are framed alike (handnet.crops), so the
    halves join into one hand whose fingers come from two gestures: a stand-in for gestures nobody
    trained. (A level cut would give one crop all the fingers: that gesture, labelled unknown.)"""
    side = first.shape[0]
    angle = rng.uniform(-np.pi / 6, np.pi / 6) + np.pi * rng.integers(2)
    offset = rng.uniform(-0.15, 0.15) * side
    y, x = np.mgrid[:side, :side] - (side - 1) / 2
    keep_first = (x * np.cos(angle) + y * np.sin(angle)) > offset
    return np.where(keep_first[..., None], first, second)


def augment_crop(rng, image: np.ndarray) -> np.ndarray:
    """A random flip (a left hand is a mirrored right one), rotation up to 25 degrees, zoom and
    shift within detector-like framing errors, and brightness/contrast/colour changes."""
    side = image.shape[0]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-25, 25), np.exp(rng.uniform(-0.15, 0.15)))
    matrix[:, 2] += rng.uniform(-0.08, 0.08, 2) * side
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (side, side), borderMode=cv2.BORDER_REFLECT)
    gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3)
    return np.clip(image.astype(np.float32) * gain + rng.uniform(-20, 20), 0, 255).astype(np.uint8)


def cut_crops(data: list[str], gestures: list[str], out: str | os.PathLike, unseen: list[str] = (),
              unseen_out: str | os.PathLike | None = None, side: int = 96, na_name: str = "na",
              detector: str | os.PathLike | None = None) -> dict:
    """Crop every annotated hand of `data` into the gesture layout; returns {folder: count}.
    Crop files are named after their source image, so consecutive frames stay neighbours.

    detector: a detector .tflite. Each hand it finds (its nearest detection within the metrics'
    reach, score at least DETECTED_MIN_SCORE) gets a second crop, `<name>.det.png`, framed by that
    detection as infer.py --gestures frames it: a detected centre and radius differ from an
    annotated box's, and a classifier trained on boxes alone misreads them (docs/gestures.md).
    The two crops of one hand share a split group (annotations.group_key)."""
    samples = load_samples(data, "*=positive")  # every hand, whatever its label
    find = _detected_framing(detector) if detector else None
    hands = framed = 0
    with _Layout(gestures, out, unseen, unseen_out, na_name) as layout:
        for sample in samples:
            frame = read_image(sample.path)
            detections = find(frame) if find else []
            for i, hand in enumerate(sample.hands):
                target, name = layout.folder(hand.label), f"{Path(sample.path).stem}_{i}"
                cv2.imwrite(str(target / f"{name}.png"), crop_hand(frame, hand.x, hand.y, hand.radius, side))
                found = nearest_within_reach(hand, detections)
                hands, framed = hands + 1, framed + (found is not None)
                if found is not None:
                    cv2.imwrite(str(target / f"{name}{DETECTED_SUFFIX}.png"),
                                crop_hand(frame, found.x, found.y, found.radius, side))
        if find:
            print(f"the detector framed {framed} of {hands} hands (score {DETECTED_MIN_SCORE:g} or more, within reach)")
        missing = [g for g in list(gestures) + list(unseen) if not layout.counts.get(g)]
        if missing:
            raise DatasetError(f"no hands labelled {', '.join(missing)} in {', '.join(data)}")
        return layout.summary()


def _detected_framing(path):
    """frame -> detections down to DETECTED_MIN_SCORE, by handnet.runtime as infer.py runs it."""
    from handnet.runtime import HandDetector  # noqa: PLC0415

    return HandDetector(path, score_threshold=DETECTED_MIN_SCORE).detect


def regroup_folders(data: str | os.PathLike, gestures: list[str], out: str | os.PathLike, unseen: list[str] = (),
                    unseen_out: str | os.PathLike | None = None, na_name: str = "na") -> dict:
    """Copy an image-folder dataset (one sub-folder per gesture) into the training layout:
    listed gestures keep their folder, unseen ones go to `unseen_out`, all others into na/
    (files prefixed with their gesture, so runs of one recording stay together)."""
    folders = image_folders(Path(data))
    missing = [g for g in list(gestures) + list(unseen) if g not in folders]
    if missing:
        raise DatasetError(f"{data}: no folder of images named {', '.join(missing)}")
    with _Layout(gestures, out, unseen, unseen_out, na_name) as layout:
        for name, images in folders.items():
            prefix = "" if name in gestures or name in unseen else f"{name}_"
            for image in images:
                shutil.copyfile(image, layout.folder(name) / f"{prefix}{image.name}")
        return layout.summary()


def merge_folders(data: list[str | os.PathLike], out: str | os.PathLike, prefixes: list[str] = (),
                  na_name: str = "na", as_na: list[str] = (), leave_out: list[str] = ()) -> dict:
    """Copy several gesture folders into one: gesture G of data[i] goes to prefixes[i] + G (so
    `fc_` and `digit_` keep two sets' gestures apart; with no prefixes, same-named gestures are
    pooled), and every na/ folder into na/. Merged names listed in `as_na` go into na/ too, as
    <source folder>_<gesture>_<name>: more varied unknowns from other sets; those listed in
    `leave_out` are not copied (gestures too close to one to recognise, or to an unseen one, to
    serve as unknowns). Other files are renamed <source folder>_<name>, so recordings stay in
    runs; two --data folders of the same name pooling one gesture clash, an error that leaves
    nothing behind."""
    if prefixes and len(prefixes) != len(data):
        raise ValueError(f"--prefix needs one prefix per --data folder: {len(prefixes)} for {len(data)}")
    if any(Path(root).resolve() == Path(out).resolve() for root in data):
        raise ValueError(f"{out}: the merged folder must not be one of the --data folders")
    prefixes = list(prefixes) or [""] * len(data)
    sources = [(Path(root), image_folders(Path(root))) for root in data]
    names = {prefix + name for prefix, (_, folders) in zip(prefixes, sources) for name in folders if name != na_name}
    for flag, listed in (("--as-na", as_na), ("--leave-out", leave_out)):
        if missing := sorted(set(listed) - names):
            raise ValueError(f"{flag} names {', '.join(missing)}, which no --data folder holds "
                             f"(merged names: {', '.join(sorted(names))})")
    kept = sorted(names - set(as_na) - set(leave_out))
    if not kept:
        raise ValueError("--as-na and --leave-out take every gesture: none is left to recognise")
    with _Layout(kept, out, na_name=na_name) as layout:
        for prefix, (root, folders) in zip(prefixes, sources):
            for name, images in folders.items():
                if prefix + name in leave_out:
                    continue
                folded = prefix + name in as_na  # keeps its gesture in its file names, apart from the rest of na
                target = layout.folder(na_name if name == na_name or folded else prefix + name)
                for image in images:
                    copy = target / (f"{root.name}_{name}_{image.name}" if folded else f"{root.name}_{image.name}")
                    if copy.exists():  # two --data folders of the same name
                        raise ValueError(f"{image} and another --data folder's file would both be {copy.name}")
                    shutil.copyfile(image, copy)
        return layout.summary()


class _Layout:
    """The training layout under construction, used as `with _Layout(...) as layout`: known
    gestures and na under `out`, unseen ones under `unseen_out`, each built by
    handnet.atomic.building_folders, so they replace their folders when the block ends and are
    removed when it raises."""

    def __init__(self, gestures, out, unseen=(), unseen_out=None, na_name="na"):
        if set(gestures) & set(unseen):
            raise ValueError(f"labels both known and unseen: {', '.join(sorted(set(gestures) & set(unseen)))}")
        if na_name in gestures or na_name in unseen:
            raise ValueError(f"'{na_name}' names the unknown-gesture folder; it cannot be a gesture too")
        if not gestures:
            raise ValueError("--gestures names no label to recognise")
        self.gestures, self.unseen, self.na_name = set(gestures), set(unseen), na_name
        self.out = Path(out)
        self.unseen_out = Path(unseen_out) if unseen_out else unseen_dir(self.out)
        self.roots = [self.out, self.unseen_out] if unseen else [self.out]
        self.counts: dict[str, int] = {}  # label -> files placed

    def __enter__(self) -> _Layout:
        self._building = building_folders(*self.roots)
        self.partials = dict(zip(self.roots, self._building.__enter__()))
        return self

    def __exit__(self, kind, error, trace):
        return self._building.__exit__(kind, error, trace)

    def folder(self, label: str) -> Path:
        """The (created) folder a file of this label goes to; counts the file."""
        if label in self.gestures:
            root, folder = self.out, label
        elif label in self.unseen:
            root, folder = self.unseen_out, label
        else:
            root, folder = self.out, self.na_name
        self.counts[label] = self.counts.get(label, 0) + 1
        target = self.partials[root] / folder
        target.mkdir(exist_ok=True)
        return target

    def summary(self) -> dict:
        """{"<root>/<folder>": files placed} of the layout so far."""
        return {f"{root.name}/{folder.name}": sum(1 for _ in folder.iterdir())
                for root, partial in self.partials.items()
                for folder in sorted(p for p in partial.iterdir() if p.is_dir())}


def ensure_synthetic_gestures(root: Path = SYNTHETIC_GESTURES_DIR, per_class: int = 150, side: int = 64) -> Path:
    """Generate the default synthetic gesture folders unless they are there already."""
    from handnet.synthetic import generate_gesture_folders  # noqa: PLC0415

    if not (root.is_dir() and unseen_dir(root).is_dir()):
        print(f"generating synthetic gesture crops -> {root} and {unseen_dir(root)}")
        generate_gesture_folders(root, per_class, side)
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.gesture_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    crops = sub.add_parser("crops", help="cut hands of a box-annotated dataset into gesture folders")
    crops.add_argument("--data", nargs="+", required=True, help="dataset folder(s) in any supported format")
    crops.add_argument("--side", type=int, default=96, help="crop side in pixels")
    crops.add_argument("--detector", help="a detector .tflite: also crop each hand it finds as it frames it "
                                          "(<name>.det.png), the framing infer.py --gestures classifies")
    regroup = sub.add_parser("regroup", help="copy a one-folder-per-gesture dataset into the training layout")
    regroup.add_argument("--data", required=True, help="folder with one sub-folder of images per gesture")
    for command in (crops, regroup):
        command.add_argument("--gestures", required=True, help="comma-separated labels to recognise")
        command.add_argument("--unseen", default="", help="comma-separated labels held back as unseen gestures")
        command.add_argument("--out", required=True, help="folder for the known gestures and na/")
        command.add_argument("--unseen-out", help="folder for the unseen gestures (default: <out>-unseen)")
        command.add_argument("--na-name", default="na")
    merge = sub.add_parser("merge", help="copy several gesture folders into one")
    merge.add_argument("--data", nargs="+", required=True, help="folders with one sub-folder of images per gesture")
    merge.add_argument("--prefix", nargs="+", default=[], help="one prefix per --data folder for its gesture names")
    merge.add_argument("--out", required=True, help="the merged folder")
    merge.add_argument("--na-name", default="na")
    merge.add_argument("--as-na", default="", help="merged gesture names (prefix included) to put into na/, "
                       "e.g. fc_three,fc_four: unknowns from another set")
    merge.add_argument("--leave-out", default="", help="merged gesture names (prefix included) not to copy")
    synthetic = sub.add_parser("synthetic", help="write the synthetic gesture folders")
    synthetic.add_argument("--out", default=str(SYNTHETIC_GESTURES_DIR))
    synthetic.add_argument("--per-class", type=int, default=150)
    synthetic.add_argument("--side", type=int, default=64)
    synthetic.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command in ("crops", "regroup"):
            if args.command == "crops":
                counts = cut_crops(args.data, parse_names(args.gestures), args.out, parse_names(args.unseen), args.unseen_out,
                                   args.side, args.na_name, args.detector)
            else:
                counts = regroup_folders(args.data, parse_names(args.gestures), args.out, parse_names(args.unseen),
                                         args.unseen_out, args.na_name)
            for key, count in sorted(counts.items()):
                print(f"{key}: {count}")
        elif args.command == "merge":
            for key, count in sorted(merge_folders(args.data, args.out, args.prefix, args.na_name,
                                                        parse_names(args.as_na), parse_names(args.leave_out)).items()):
                print(f"{key}: {count}")
        else:
            from handnet.synthetic import generate_gesture_folders  # noqa: PLC0415

            out, unseen = generate_gesture_folders(args.out, args.per_class, args.side, args.seed)
            print(f"wrote {out} and {unseen}")
    except (DatasetError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
