"""Dataset folders -> lists of Sample. No TensorFlow here.

Formats, detected from the folder's contents (datasets/README.md documents them):

- native: images plus one `hands.json` (centre x, y and radius in pixels, and a label per hand);
- Pascal VOC XML (labelImg): one .xml beside each image, or `Annotations/` + `JPEGImages/`;
- YOLO txt: `images/` and `labels/` folders (optionally under split folders) plus `data.yaml`;
- COCO JSON: one .json with `images`, `annotations` and `categories`.

Box formats become hands through `box_to_hand`, the one place that rule is written down.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from handnet.config import parse_labels

NATIVE_FILE = "hands.json"
SPLITS = ("train", "val")  # what a native entry's optional `split` may declare
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class DatasetError(ValueError):
    """A problem with one file of a dataset; the message starts with that file's path."""


@dataclasses.dataclass(frozen=True)
class Hand:
    x: float  # centre, frame pixels; pixel i covers [i, i + 1)
    y: float
    radius: float  # about the hand's size, frame pixels
    label: str
    role: str = "positive"  # positive | ignore | negative, from the --labels mapping
    box: tuple[float, ...] = ()  # (x0, y0, x1, y1) frame pixels, for hands read from boxes; () for native ones


@dataclasses.dataclass(frozen=True)
class Sample:
    path: str
    hands: tuple[Hand, ...]
    width: int = 0
    height: int = 0
    # Optional label mask (native format only): an image-sized single-channel PNG whose value v > 0
    # marks pixels that show mask_labels[v - 1], 0 the background; mask_roles maps them as hands are.
    mask: str = ""
    mask_labels: tuple[str, ...] = ()
    mask_roles: tuple[str, ...] = ()
    # Native format only: the side of the train/validation split the dataset declares for this
    # image, "train" or "val"; "" leaves it to the split by groups (train_val_split).
    split: str = ""


def box_to_hand(x0: float, y0: float, x1: float, y1: float, label: str) -> Hand:
    """A box becomes a hand centred on the box, with radius half its shorter side.

    Hand-drawn boxes often take in the wrist or forearm, which stretches the longer side; the
    shorter side stays close to the width of the hand itself. ValueError for a box whose max
    corner is not below-right of its min corner (a hand there would be a guess) or that is not finite.
    """
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is not finite")
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has its max corner above or left of its min corner "
                         f"(negative width or height)")
    return Hand((x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 2, label, box=(x0, y0, x1, y1))


# ---------------------------------------------------------------------------------------------
# Loading


def load_samples(roots, labels: str, check_images: bool = True, skipped: list | None = None) -> list[Sample]:
    """Read every dataset folder in `roots`, map labels to roles, and validate it all.

    Raises DatasetError naming the file and the problem: missing folder, unknown format or label,
    unreadable or truncated image, a hand outside its image, a negative radius, no images.
    With a `skipped` list, bad files (annotation files, images, samples) are appended to it as
    DatasetErrors and left out instead; a missing or empty folder still raises.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    mapping = parse_labels(labels)
    samples = []
    for root in roots:
        found = read_dataset(root, skipped)
        if not found:
            raise DatasetError(f"{root}: no annotated images in this dataset"
                               + (f" ({len(skipped)} bad file(s) skipped)" if skipped else ""))
        for sample in found:
            try:
                sample = _assign_roles(sample, mapping, root)
                samples.append(validate_sample(sample) if check_images else sample)
            except DatasetError as err:
                _collect(skipped, err)
    if not samples:
        raise DatasetError(f"{', '.join(map(str, roots))}: no usable images (every one was skipped)")
    return samples


def read_dataset(root: str | os.PathLike, problems: list[DatasetError] | None = None) -> list[Sample]:
    """The samples of one dataset folder, labels as written (roles not assigned, images not read).

    Without `problems` the first bad annotation file raises DatasetError; with a list, each bad
    file's error is appended to it and the file skipped, so one pass finds them all.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    return READERS[detect_format(root)](root, problems)


def _collect(problems: list[DatasetError] | None, err: DatasetError) -> None:
    """Raise err, or append it to problems when the caller collects them."""
    if problems is None:
        raise err
    problems.append(err)


def detect_format(root: Path) -> str:
    if (root / NATIVE_FILE).is_file():
        return "native"
    if _find_coco_files(root):
        return "coco"
    if (root / "data.yaml").is_file() or any(p.name == "labels" for p in root.rglob("labels")):
        return "yolo"
    if any(root.rglob("*.xml")):
        return "voc"
    broken = sorted(p.name for p in root.glob("*.json") if p.name != NATIVE_FILE)
    hint = f" ({', '.join(broken)}: not a COCO annotation file, or not JSON at all)" if broken else ""
    raise DatasetError(f"{root}: no {NATIVE_FILE}, COCO .json, YOLO data.yaml/labels or VOC .xml found{hint}")


def _assign_roles(sample: Sample, mapping: dict[str, str], root: Path) -> Sample:
    def role_of(label: str) -> str:
        role = mapping.get(label, mapping.get("*"))
        if role is None:
            known = ", ".join(sorted(mapping))
            raise DatasetError(
                f"{sample.path}: unknown label '{label}' (mapped: {known}); "
                f"add it to --labels, e.g. --labels {label}=ignore or '*=ignore'"
            )
        return role

    hands = tuple(dataclasses.replace(hand, role=role_of(hand.label)) for hand in sample.hands)
    return dataclasses.replace(sample, hands=hands, mask_roles=tuple(map(role_of, sample.mask_labels)))


def read_native(root: Path, problems=None) -> list[Sample]:
    path = root / NATIVE_FILE
    try:
        doc = json.loads(path.read_text())
        entries = doc["images"]
        if not isinstance(entries, list):
            raise TypeError("'images' is not a list")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        _collect(problems, DatasetError(f"{path}: not a handnet annotation file ({type(err).__name__}: {err})"))
        return []
    mask_labels = doc.get("mask_labels", [])
    if not isinstance(mask_labels, list) or not all(isinstance(label, str) for label in mask_labels):
        _collect(problems, DatasetError(f"{path}: 'mask_labels' must be a list of label names"))
        return []
    samples, seen = [], set()
    for number, entry in enumerate(entries):
        try:
            hands = tuple(
                Hand(float(h["x"]), float(h["y"]), float(h["radius"]), str(h["label"]))
                for h in entry.get("hands", [])
            )
            file = str(entry["file"])
            mask = str(entry.get("mask", ""))
            split = entry.get("split", "")
            if split not in ("", *SPLITS):
                raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            _collect(problems, DatasetError(f"{path}: image entry {number} is not "
                                            f"{{file, hands: [{{x, y, radius, label}}], split?}} ({type(err).__name__}: {err})"))
            continue
        if file in seen:
            _collect(problems, DatasetError(f"{root / file}: listed twice in {path}"))
            continue
        if mask and not mask_labels:
            _collect(problems, DatasetError(f"{root / mask}: a mask, but {path} has no 'mask_labels' to read it by"))
            continue
        seen.add(file)
        samples.append(Sample(str(root / file), hands, mask=str(root / mask) if mask else "",
                              mask_labels=tuple(mask_labels) if mask else (), split=split))
    return samples


def read_voc(root: Path, problems=None) -> list[Sample]:
    samples = []
    for xml_path in sorted(root.rglob("*.xml")):
        try:
            tree = ET.parse(xml_path).getroot()
            hands = []
            for obj in tree.iter("object"):
                box = obj.find("bndbox")
                coords = [float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
                hands.append(box_to_hand(*coords, obj.find("name").text.strip()))
            filename = tree.findtext("filename", "").strip()
        except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
            _collect(problems, DatasetError(f"{xml_path}: not a Pascal VOC annotation ({err})"))
            continue
        image = _voc_image(xml_path, filename)
        if image is None:
            _collect(problems, DatasetError(f"{xml_path}: its image '{filename}' was not found"))
            continue
        samples.append(Sample(str(image), tuple(hands)))
    return samples


def _voc_image(xml_path: Path, filename: str) -> Path | None:
    folders = [xml_path.parent, xml_path.parent.parent / "JPEGImages"]
    names = [filename] if filename else []
    names += [xml_path.stem + suffix for suffix in sorted(IMAGE_SUFFIXES)]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def read_yolo(root: Path, problems=None) -> list[Sample]:
    try:
        names = _yolo_names(root)
    except DatasetError as err:
        _collect(problems, err)
        return []
    samples = []
    for image in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        if "images" not in image.parts[len(root.parts) :]:
            continue
        try:
            samples.append(Sample(str(image), _read_yolo_labels(yolo_label_path(image), names, image)))
        except DatasetError as err:
            _collect(problems, err)
    return samples


def yolo_label_path(image: Path) -> Path:
    """YOLO's rule: the label file mirrors the image's path with its last `images` folder
    replaced by `labels`, and a .txt suffix."""
    parts = list(image.parts)
    parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
    return Path(*parts).with_suffix(".txt")


def _yolo_names(root: Path) -> list[str] | dict:
    """The class names of the folder's data.yaml, or of its parent's: a set's `train/` or `valid/`
    folder is a dataset of its own, named by the set's data.yaml."""
    yaml_path = next((p for p in (root / "data.yaml", root.parent / "data.yaml") if p.is_file()), None)
    if yaml_path is None:
        return {}
    import yaml  # noqa: PLC0415 (only YOLO folders need it)

    try:
        names = (yaml.safe_load(yaml_path.read_text()) or {}).get("names", {})
    except yaml.YAMLError as err:
        raise DatasetError(f"{yaml_path}: not valid YAML ({err})") from None
    except AttributeError:
        raise DatasetError(f"{yaml_path}: not a YOLO data.yaml (no 'names' mapping)") from None
    if not isinstance(names, (list, dict)):
        raise DatasetError(f"{yaml_path}: 'names' must be a list or a mapping of class names, got {names!r}")
    return names


def _read_yolo_labels(label_path: Path, names, image: Path) -> tuple[Hand, ...]:
    # YOLO coordinates are fractions of the image, so the image size is needed here.
    if not label_path.is_file():
        return ()  # YOLO's convention: an image without a label file has no objects
    lines = [line.split() for line in label_path.read_text().splitlines() if line.strip()]
    if not lines:
        return ()
    height, width = _image_size(image)
    hands = []
    for number, fields in enumerate(lines, 1):
        try:
            cls = int(fields[0])
            xc, yc, w, h = (float(v) for v in fields[1:5])
            label = names[cls] if names else str(cls)
            if isinstance(names, list) and cls < 0:
                raise IndexError(cls)  # Python would count from the end
        except (ValueError, IndexError, KeyError):
            raise DatasetError(f"{label_path}: line {number} is not 'class xc yc w h' with a known class") from None
        try:
            hands.append(box_to_hand((xc - w / 2) * width, (yc - h / 2) * height,
                                     (xc + w / 2) * width, (yc + h / 2) * height, str(label)))
        except ValueError as err:
            raise DatasetError(f"{label_path}: line {number}: {err}") from None
    return tuple(hands)


def _find_coco_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.json")):
        if path.name == NATIVE_FILE or path.stat().st_size > 512 * 2**20:
            continue
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict) and {"images", "annotations", "categories"} <= doc.keys():
            found.append(path)
    return found


def read_coco(root: Path, problems=None) -> list[Sample]:
    samples = []
    for path in _find_coco_files(root):
        doc = json.loads(path.read_text())
        try:
            categories = {c["id"]: str(c["name"]) for c in doc["categories"]}
            hands_of = {img["id"]: [] for img in doc["images"]}
            for ann in doc["annotations"]:
                x, y, w, h = (float(v) for v in ann["bbox"])
                hands_of[ann["image_id"]].append(box_to_hand(x, y, x + w, y + h, categories[ann["category_id"]]))
            found = []
            for img in doc["images"]:
                image = path.parent / img["file_name"]
                if not image.is_file() and (path.parent / "images" / img["file_name"]).is_file():
                    image = path.parent / "images" / img["file_name"]
                found.append(Sample(str(image), tuple(hands_of[img["id"]])))
        except (KeyError, TypeError, ValueError) as err:
            _collect(problems, DatasetError(f"{path}: not a valid COCO annotation file ({type(err).__name__}: {err})"))
            continue
        samples += found
    return samples


READERS = {"native": read_native, "voc": read_voc, "yolo": read_yolo, "coco": read_coco}


# ---------------------------------------------------------------------------------------------
# Validation


def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 BGR. Raises DatasetError for a missing, unreadable or truncated file."""
    return _decode(Path(path), cv2.IMREAD_COLOR)


def read_mask(sample: Sample) -> np.ndarray:
    """The sample's label mask: (H, W) uint8, values 0 .. len(mask_labels). Raises DatasetError
    for a missing, unreadable or truncated file, more than one channel, or an unlisted value."""
    mask = _decode(Path(sample.mask), cv2.IMREAD_UNCHANGED, "mask")
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise DatasetError(f"{sample.mask}: a mask must be a single-channel 8-bit image, got shape "
                           f"{mask.shape} of {mask.dtype}")
    if mask.max() > len(sample.mask_labels):
        raise DatasetError(f"{sample.mask}: mask value {mask.max()} but only {len(sample.mask_labels)} mask_labels")
    return mask


def _decode(path: Path, flags: int, what: str = "image") -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{path}: cannot read {what} ({err.strerror})") from None
    if not data:
        raise DatasetError(f"{path}: empty file")
    if data[:2] == b"\xff\xd8" and data.find(b"\xff\xd9", max(0, data.rfind(b"\xff\xda"))) < 0:
        # OpenCV decodes a cut-off JPEG into a grey-bottomed image and only warns. The image ends
        # at the end-of-image marker after its last scan (a 0xff in scan data is always followed
        # by 0x00, so the marker cannot occur inside it); bytes after it, such as a phone's zero
        # padding, are ignored by decoders and here.
        raise DatasetError(f"{path}: truncated JPEG (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        raise DatasetError(f"{path}: truncated PNG (no IEND chunk)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise DatasetError(f"{path}: unreadable {what} (not a format OpenCV can decode)")
    return image


def _image_size(path: Path) -> tuple[int, int]:
    image = read_image(path)
    return image.shape[0], image.shape[1]


def validate_sample(sample: Sample) -> Sample:
    """Decode the image once and check every hand against it; returns the sample with its size.
    Raises DatasetError with the first problem found."""
    height, width = _image_size(Path(sample.path))
    problems = hand_problems(sample, height, width)
    if problems:
        raise problems[0]
    problems = mask_problems(sample, height, width)
    if problems:
        raise problems[0]
    return dataclasses.replace(sample, width=width, height=height)


def mask_problems(sample: Sample, height: int, width: int) -> list[DatasetError]:
    """The sample's label mask, if it has one, unless it is a readable mask of its image's size."""
    if not sample.mask:
        return []
    try:
        mask_h, mask_w = read_mask(sample).shape
    except DatasetError as err:
        return [err]
    if (mask_h, mask_w) != (height, width):
        return [DatasetError(f"{sample.mask}: mask is {mask_w}x{mask_h}, its image {width}x{height}")]
    return []


def hand_problems(sample: Sample, height: int, width: int) -> list[DatasetError]:
    """Every hand of a sample that is not a finite, non-negative circle centred inside its
    (height, width) image."""
    problems = []
    for hand in sample.hands:
        if not (np.isfinite(hand.x) and np.isfinite(hand.y) and np.isfinite(hand.radius)):
            problems.append(DatasetError(f"{sample.path}: hand '{hand.label}' has a non-finite coordinate"))
        elif hand.radius < 0:
            problems.append(DatasetError(f"{sample.path}: hand '{hand.label}' has a negative radius ({hand.radius:g})"))
        elif not (0 <= hand.x <= width and 0 <= hand.y <= height):
            problems.append(DatasetError(
                f"{sample.path}: annotation outside the image: hand '{hand.label}' at "
                f"({hand.x:g}, {hand.y:g}) in a {width}x{height} image"
            ))
    return problems


# ---------------------------------------------------------------------------------------------
# Splitting

_ROBOFLOW_COPY = re.compile(r"\.rf\.[0-9a-f]{32}$")
DETECTED_SUFFIX = ".det"  # a gesture crop framed by a detection, beside the annotated one (gesture_data)


def group_key(path: str) -> str:
    """Files that share a key are versions of one frame: Roboflow exports name them
    `x_jpg.rf.<hash>`, and gesture_data names a hand's detector-framed crop `x.det`."""
    p = Path(path)
    return str(p.parent / _ROBOFLOW_COPY.sub("", p.stem).removesuffix(DETECTED_SUFFIX))


def spread(items: list, count: int) -> list:
    """At most `count` of `items`, evenly spread over them (every k-th from the first), so a
    handful of frames drawn from several folders or recordings covers them all."""
    return items[:: max(1, len(items) // count)][:count]


def sample_groups(samples: list[Sample], group_size: int) -> list[list[Sample]]:
    """The samples sorted by name and cut into runs of at least `group_size` consecutive files,
    never between two copies of one frame: the units that splits draw and that
    metrics.f1_interval resamples, since frames recorded in a row are near-duplicates."""
    ordered = sorted(samples, key=lambda s: (group_key(s.path), s.path))
    groups, current, last_key = [], [], None
    for sample in ordered:
        key = group_key(sample.path)
        if current and len(current) >= group_size and key != last_key:
            groups.append(current)
            current = []
        current.append(sample)
        last_key = key
    if current:
        groups.append(current)
    return groups


def group_indices(samples: list[Sample], group_size: int) -> list[int]:
    """Each sample's group (sample_groups), as an index, in the samples' own order."""
    group_of = {s.path: k for k, group in enumerate(sample_groups(samples, group_size)) for s in group}
    return [group_of[s.path] for s in samples]


def split_samples(samples: list[Sample], val_fraction: float, group_size: int, seed: int):
    """Split into (train, val) by groups of consecutive files, never by single files.

    Frames recorded in a row are near-duplicates and sort next to each other by name, so files
    are sorted, cut into runs of at least `group_size` (never cutting between two copies of one
    frame), and whole runs are drawn for validation.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    groups = sample_groups(samples, group_size)
    random.Random(seed).shuffle(groups)
    train, val = [], []
    for group in groups:
        (val if len(val) < val_fraction * len(samples) else train).extend(group)
    if val_fraction > 0 and not train:
        raise DatasetError(f"too few groups ({len(groups)}) to split; lower --group-size")
    return train, val


def train_val_split(samples: list[Sample], val_fraction: float, group_size: int, seed: int):
    """(train, val) for training: images whose dataset declares their side (Sample.split, such as
    the built-in synthetic set's dense training scenes and plain validation ones) go there, the
    others are split by groups of consecutive files (split_samples), val_fraction of them."""
    declared = {side: [s for s in samples if s.split == side] for side in SPLITS}
    rest = [s for s in samples if not s.split]
    train, val = split_samples(rest, val_fraction, group_size, seed) if rest else ([], [])
    return declared["train"] + train, declared["val"] + val
