"""Look after a dataset folder: find its problems, describe it, preview its targets, convert it.

    python -m handnet.dataset check datasets/mine              # every problem; exit 1 if any
    python -m handnet.dataset stats datasets/mine              # counts and sizes, text + PNG
    python -m handnet.dataset preview datasets/mine            # images with hands and targets, PNG
    python -m handnet.dataset convert datasets/mine out/ --to yolo   # native | voc | yolo | coco

Any format handnet reads works as input (datasets/README.md). No TensorFlow here.

convert writes a hand as a box by the inverse of the reading rule (handnet.annotations.box_to_hand):
a square of side 2 x radius around the centre, not clipped to the image, so reading the converted
folder gives back every hand, label, centre and radius. Images are copied byte for byte, under the
same relative paths, and the new folder appears only when it is complete.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from handnet.annotations import (
    IMAGE_SUFFIXES, NATIVE_FILE, DatasetError, Hand, Sample, hand_problems, mask_problems, read_dataset, read_image,
    yolo_label_path,
)
from handnet.atomic import building_folders, check_output_file, refuse_inputs_as_outputs, write_text
from handnet.config import DEFAULT_LABELS, parse_labels
from handnet.metrics import FAR_FRACTION

FORMATS = ("native", "voc", "yolo", "coco")
RADIUS_BINS = (0, 8, 16, 32, 64, 128, 256, np.inf)  # px, for the text histogram


# ---------------------------------------------------------------------------------------------
# check


def check(root: str | os.PathLike, labels: str | None = None) -> tuple[list[Sample], list[DatasetError]]:
    """(readable samples, every problem found): annotation files that do not parse, images that
    are missing, unreadable or truncated, hands outside their image or with a negative radius,
    images listed twice, and labels `labels` (LABEL=ROLE,...) does not map."""
    problems: list[DatasetError] = []
    try:
        samples = read_dataset(root, problems)
    except DatasetError as err:  # no folder, or no format recognised: nothing else to check
        return [], [err]
    mapping = parse_labels(labels) if labels else None
    good = []
    for sample in samples:
        try:
            image = read_image(sample.path)
        except DatasetError as err:
            problems.append(err)
            continue
        found = hand_problems(sample, *image.shape[:2])
        if mapping is not None and "*" not in mapping:
            found += [DatasetError(f"{sample.path}: label '{h.label}' is not in --labels {labels}")
                      for h in sample.hands if h.label not in mapping]
        found += mask_problems(sample, *image.shape[:2])
        problems += found
        if not found:
            good.append(dataclasses.replace(sample, width=image.shape[1], height=image.shape[0]))
    if not samples and not problems:
        problems.append(DatasetError(f"{root}: no annotated images in this dataset"))
    return good, problems


def unannotated_images(root: str | os.PathLike) -> list[Path]:
    """Images of a native folder that hands.json does not list yet (frames still to annotate)."""
    root = Path(root)
    if not (root / NATIVE_FILE).is_file():
        return []
    listed = {Path(p).resolve() for s in read_dataset(root, problems=[]) for p in (s.path, s.mask) if p}
    return [p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in listed]


# ---------------------------------------------------------------------------------------------
# stats


def dataset_stats(samples: list[Sample]) -> dict:
    """Counts per label, hands per image, radii, near/far split (handnet.metrics' rule) and sizes."""
    per_label = collections.Counter(h.label for s in samples for h in s.hands)
    per_image = collections.Counter(len(s.hands) for s in samples)
    radii: dict[str, list[float]] = collections.defaultdict(list)
    far = collections.Counter()
    for s in samples:
        for h in s.hands:
            radii[h.label].append(h.radius)
            if s.height and h.radius < FAR_FRACTION * min(s.height, s.width):
                far[h.label] += 1
    sizes = collections.Counter(f"{s.width}x{s.height}" for s in samples)
    return {
        "images": len(samples),
        "hands": sum(per_label.values()),
        "hand_free_images": per_image.get(0, 0),
        "labels": dict(sorted(per_label.items(), key=lambda kv: -kv[1])),
        "far": {label: far[label] for label in per_label},
        "hands_per_image": dict(sorted(per_image.items())),
        "radius": {label: {"min": float(np.min(r)), "median": float(np.median(r)), "max": float(np.max(r))}
                   for label, r in radii.items()},
        "radius_histogram": {label: np.histogram(r, RADIUS_BINS)[0].tolist() for label, r in radii.items()},
        "image_sizes": dict(sizes.most_common(5)),
    }


def format_stats(stats: dict) -> str:
    lines = [f"{stats['images']} images, {stats['hands']} hands, {stats['hand_free_images']} hand-free images"]
    lines.append(f"{'label':<14}{'hands':>7}{'far':>6}{'min r':>8}{'median r':>10}{'max r':>8}")
    for label, count in stats["labels"].items():
        r = stats["radius"][label]
        lines.append(f"{label:<14}{count:>7}{stats['far'][label]:>6}{r['min']:>8.1f}{r['median']:>10.1f}{r['max']:>8.1f}")
    edges = [f"<{b:g}" for b in RADIUS_BINS[1:-1]] + [f">={RADIUS_BINS[-2]:g}"]
    lines.append("radius (px)   " + "".join(f"{e:>7}" for e in edges))
    for label, counts in stats["radius_histogram"].items():
        lines.append(f"{label:<14}" + "".join(f"{c:>7}" for c in counts))
    lines.append("hands per image: " + ", ".join(f"{k}: {v}" for k, v in stats["hands_per_image"].items()))
    lines.append("image sizes: " + ", ".join(f"{k} ({v})" for k, v in stats["image_sizes"].items()))
    return "\n".join(lines)


def plot_stats(samples: list[Sample], path: str | os.PathLike, title: str) -> None:
    """Three panels: hands per label, radius histogram per label (log bins), hands per image."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from handnet.draw import save_figure  # noqa: PLC0415

    stats = dataset_stats(samples)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    labels = list(stats["labels"])
    axes[0].bar(labels, [stats["labels"][k] for k in labels], color="tab:green")
    axes[0].set_title("hands per label")
    axes[0].tick_params(axis="x", rotation=45)
    radii = {k: [h.radius for s in samples for h in s.hands if h.label == k] for k in labels}
    top = max([max(r) for r in radii.values()] + [2.0])
    bins = np.geomspace(1, top * 1.01, 24)
    for label in labels:
        axes[1].hist(np.maximum(radii[label], 1), bins=bins, alpha=0.6, label=label)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("radius (px)")
    axes[1].set_title("hand sizes")
    if labels:
        axes[1].legend(fontsize=8)
    counts = stats["hands_per_image"]
    axes[2].bar([str(k) for k in counts], list(counts.values()), color="tab:blue")
    axes[2].set_xlabel("hands in the image")
    axes[2].set_title("images")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# preview


def preview(samples: list[Sample], path: str | os.PathLike, labels: str, count: int = 12,
            input_size=(240, 320), stride: int = 8, columns: int = 3) -> int:
    """Grid PNG of `count` images spread over the dataset: each image letterboxed to input_size
    with its hands (green: positive, orange: ignore, grey: negative) beside the training target
    that train.py renders for it, ignore regions shaded blue. Returns how many images it shows."""
    import cv2  # noqa: PLC0415

    from handnet.config import Config  # noqa: PLC0415
    from handnet.draw import draw_hands, heatmap_to_bgr, save_grid  # noqa: PLC0415
    from handnet.model import check_size  # noqa: PLC0415
    from handnet.targets import ROLE_CODES, letterboxed_example  # noqa: PLC0415

    if count < 1:
        raise ValueError(f"--count {count}: show at least 1 image")
    check_size("fast", tuple(input_size), "--input-size")  # the grid of the network's heatmap
    mapping = parse_labels(labels)
    config = Config(input_size=tuple(input_size), labels=labels)
    picked = [samples[i] for i in np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int)]
    tiles = []
    for sample in picked:
        hands = tuple(_with_role(h, mapping, sample.path) for h in sample.hands)
        image, boxed, heatmap, weight = letterboxed_example(Sample(sample.path, hands), config)
        roles = {code: role for role, code in ROLE_CODES.items()}
        drawn = draw_hands(image, [Hand(x, y, r, "", roles[int(c)]) for x, y, r, c in boxed])
        cv2.putText(drawn, Path(sample.path).name[:40], (4, image.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles += [drawn, heatmap_to_bgr(heatmap, image.shape[:2], weight)]
    if not tiles:
        raise DatasetError("nothing to preview: the dataset has no readable images")
    per_row = 2 * columns
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % per_row)
    rows = [tiles[i : i + per_row] for i in range(0, len(tiles), per_row)]
    save_grid(path, rows, captions=("image", "target") * columns)
    return len(picked)


def _with_role(hand: Hand, mapping: dict[str, str], path: str) -> Hand:
    role = mapping.get(hand.label, mapping.get("*"))
    if role is None:
        raise DatasetError(f"{path}: label '{hand.label}' is not in --labels (add it, or '*=ignore')")
    return Hand(hand.x, hand.y, hand.radius, hand.label, role)


# ---------------------------------------------------------------------------------------------
# convert


def hand_box(hand: Hand) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1): the square box that box_to_hand reads back as this hand."""
    return hand.x - hand.radius, hand.y - hand.radius, hand.x + hand.radius, hand.y + hand.radius


def convert(src: str | os.PathLike, dst: str | os.PathLike, to: str) -> list[Sample]:
    """Write SRC's images and hands as a new folder DST in format `to`; returns the samples
    written. Raises DatasetError for a bad source (check it first) and FileExistsError when DST
    exists and is not empty."""
    if to not in FORMATS:
        raise ValueError(f"--to {to}: choose from {', '.join(FORMATS)}")
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst}: already exists and is not empty; choose a new folder")
    samples, problems = check(src)
    if problems:
        raise DatasetError(f"{problems[0]} ({len(problems)} problem(s) in {src}; see python -m handnet.dataset check {src})")
    labels = _label_order(src, samples)
    rel_paths = [Path(os.path.relpath(s.path, src)) for s in samples]
    if any(p.parts[0] == ".." for p in rel_paths):
        raise DatasetError(f"{src}: some images lie outside the folder; convert copies only what is inside it")
    if to == "yolo":  # YOLO finds images only under an images/ folder
        rel_paths = [p if "images" in p.parts[:-1] else Path("images") / p for p in rel_paths]
    # Label masks go along to a native folder; the other formats have no place for them.
    masks = [Path(os.path.relpath(s.mask, src)) if s.mask and to == "native" else None for s in samples]
    with building_folders(dst) as (tmp,):
        copies = [(s.path, rel) for s, rel in zip(samples, rel_paths)]
        copies += [(s.mask, rel) for s, rel in zip(samples, masks) if rel is not None]
        for source, rel in copies:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp / rel)
        written = [dataclasses.replace(s, mask=rel.as_posix() if rel else "") for s, rel in zip(samples, masks)]
        WRITERS[to](tmp, written, rel_paths, labels)
    return samples


def _label_order(src: Path, samples: list[Sample]) -> list[str]:
    """Labels in the source's own order where it has one (hands.json's list), else by first use."""
    order = []
    if (src / NATIVE_FILE).is_file():
        listed = json.loads((src / NATIVE_FILE).read_text()).get("labels", [])
        order = [str(v) for v in listed] if isinstance(listed, list) else []
    for s in samples:
        order += [h.label for h in s.hands if h.label not in order]
    return order


def write_native(root: Path, samples: list[Sample], rel_paths: list[Path], labels: list[str]) -> None:
    """hands.json for samples whose images convert copied under rel_paths (and their label masks
    under sample.mask, relative to root; a declared split stays declared)."""
    images = [{"file": rel.as_posix(), "width": s.width, "height": s.height, **({"mask": s.mask} if s.mask else {}),
               "hands": [_native_hand(h) for h in s.hands], **({"split": s.split} if s.split else {})}
              for s, rel in zip(samples, rel_paths)]
    doc = {"format": "handnet", "version": 1, "labels": labels, "images": images}
    mask_labels = next((s.mask_labels for s in samples if s.mask), ())
    if mask_labels:
        doc["mask_labels"] = list(mask_labels)
    (root / NATIVE_FILE).write_text(json.dumps(doc, indent=1) + "\n")


def _native_hand(hand: Hand) -> dict:
    return {"x": round(hand.x, 2), "y": round(hand.y, 2), "radius": round(hand.radius, 2), "label": hand.label}


def write_voc(root: Path, samples: list[Sample], rel_paths: list[Path], labels: list[str]) -> None:
    """labelImg's layout: one .xml beside each image (hand-free images get one with no objects)."""
    for sample, rel in zip(samples, rel_paths):
        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = rel.parent.name
        ET.SubElement(ann, "filename").text = rel.name
        size = ET.SubElement(ann, "size")
        for key, value in (("width", sample.width), ("height", sample.height), ("depth", 3)):
            ET.SubElement(size, key).text = str(value)
        for hand in sample.hands:
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = hand.label
            ET.SubElement(obj, "difficult").text = "0"
            box = ET.SubElement(obj, "bndbox")
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), hand_box(hand)):
                ET.SubElement(box, key).text = f"{value:.2f}"
        ET.indent(ann)
        ET.ElementTree(ann).write(root / rel.with_suffix(".xml"), encoding="unicode")


def write_yolo(root: Path, samples: list[Sample], rel_paths: list[Path], labels: list[str]) -> None:
    """images/ and labels/ (class xc yc w h, fractions of the image) plus data.yaml's names."""
    import yaml  # noqa: PLC0415

    index = {label: i for i, label in enumerate(labels)}
    for sample, rel in zip(samples, rel_paths):
        label_path = yolo_label_path(root / rel)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for hand in sample.hands:
            side = 2 * hand.radius
            lines.append(f"{index[hand.label]} {hand.x / sample.width:.6f} {hand.y / sample.height:.6f} "
                         f"{side / sample.width:.6f} {side / sample.height:.6f}")
        label_path.write_text("".join(line + "\n" for line in lines))
    (root / "data.yaml").write_text(yaml.safe_dump({"nc": len(labels), "names": labels}, sort_keys=False))


def write_coco(root: Path, samples: list[Sample], rel_paths: list[Path], labels: list[str]) -> None:
    """One annotations.json: images (paths relative to it), square boxes, categories 1..N."""
    category = {label: i + 1 for i, label in enumerate(labels)}
    images, annotations = [], []
    for image_id, (sample, rel) in enumerate(zip(samples, rel_paths), 1):
        images.append({"id": image_id, "file_name": rel.as_posix(), "width": sample.width, "height": sample.height})
        for hand in sample.hands:
            x0, y0, x1, y1 = hand_box(hand)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category[hand.label],
                                "bbox": [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)],
                                "area": round((x1 - x0) * (y1 - y0), 3), "iscrowd": 0})
    doc = {"images": images, "annotations": annotations,
           "categories": [{"id": i, "name": label} for label, i in category.items()]}
    (root / "annotations.json").write_text(json.dumps(doc, indent=1) + "\n")


WRITERS = {"native": write_native, "voc": write_voc, "yolo": write_yolo, "coco": write_coco}


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.dataset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("check", help="list every problem, with file and reason; exit 1 if any")
    p.add_argument("data")
    p.add_argument("--labels", help="LABEL=ROLE,...: also report labels this mapping does not know")
    p = commands.add_parser("stats", help="counts per label, hand sizes, hands per image (text and PNG)")
    p.add_argument("data")
    p.add_argument("--png", help="where the plot goes (default: <folder name>-stats.png here)")
    p.add_argument("--json", help="also write the figures as JSON")
    p = commands.add_parser("preview", help="grid PNG of images with hands and their training targets")
    p.add_argument("data")
    p.add_argument("--out", help="PNG path (default: <folder name>-preview.png here)")
    p.add_argument("--count", type=int, default=12)
    p.add_argument("--labels", default=DEFAULT_LABELS + ",*=ignore", help="LABEL=ROLE,... (default: %(default)s)")
    p.add_argument("--input-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    p = commands.add_parser("convert", help="write the dataset in another format, to a new folder")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--to", required=True, choices=FORMATS)
    args = parser.parse_args(argv)
    name = Path(args.data).resolve().name
    try:
        outputs = {"--png": args.png or f"{name}-stats.png", "--json": args.json} if args.command == "stats" else \
            {"--out": args.out or f"{name}-preview.png"} if args.command == "preview" else {}
        refuse_inputs_as_outputs(outputs, [args.data])
        for flag, path in outputs.items():
            if path:
                check_output_file(path, flag)
        if args.command == "check":
            return _check_main(args)
        if args.command == "convert":
            samples = convert(args.data, args.out, args.to)
            print(f"wrote {len(samples)} images, {sum(len(s.hands) for s in samples)} hands to {args.out} ({args.to})")
            return 0
        samples, problems = check(args.data)
        if problems:
            print(f"note: {len(problems)} problem(s) skipped; see python -m handnet.dataset check {args.data}",
                  file=sys.stderr)
        if not samples:
            raise DatasetError(f"{args.data}: no readable annotated images")
        if args.command == "stats":
            stats = dataset_stats(samples)
            print(format_stats(stats))
            png = args.png or f"{name}-stats.png"
            plot_stats(samples, png, f"{name}: {stats['images']} images, {stats['hands']} hands")
            if args.json:
                write_text(args.json, json.dumps(stats, indent=2) + "\n")
            print(f"wrote {png}")
        else:
            out = args.out or f"{name}-preview.png"
            mapping = parse_labels(args.labels)
            if not any(mapping.get(h.label, mapping.get("*")) == "positive" for sample in samples for h in sample.hands):
                print(f"note: no hand here is an open hand to find under --labels {args.labels}: every hand is "
                      f"drawn as ignored (--labels open-other maps every shared set's labels)", file=sys.stderr)
            shown = preview(samples, out, args.labels, args.count, args.input_size)
            print(f"wrote {out} ({shown} images)")
        return 0
    except (DatasetError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.filename or ''}: {err.strerror}", file=sys.stderr)
        return 2


def _check_main(args) -> int:
    samples, problems = check(args.data, args.labels)
    for problem in problems:
        print(problem)
    waiting = unannotated_images(args.data)
    if waiting:
        print(f"note: {len(waiting)} image(s) not annotated yet (python -m handnet.annotate {args.data})")
    hands = sum(len(s.hands) for s in samples)
    print(f"{args.data}: {len(samples)} good images, {hands} hands, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
