"""Detection scenes from a folder of hand crops: one hand per image, on a plain wall.

Gesture sets such as sign-language digits hold one hand per image, filling it, with no boxes. A
detector sees hands of every size within a wider frame, so each crop becomes a scene:

1. The hand is found by its colour: skin has chroma, a plain wall has little (Otsu's threshold on
   the Lab chroma, then the largest connected region). The hand is taken to be upright with its
   forearm entering from below, so its box stops 1.25 box widths under its top, and
   centre and radius follow the box rule of every other format (annotations.box_to_hand).
2. The crop is scaled so that the hand gets a random radius (log-uniform in `radii`) and placed
   at a random spot of a `size` frame with the hand inside it. The rest of the frame is the
   wall: the crop's lighting is first made even (a quadratic fitted to the wall around the hand
   and divided out), and the frame is filled with the wall's mean colour, into which the crop
   fades over its outer 6%, so that no bright square or seam marks where it ends.

Labels are the folder names (`5`, `fist`, ...); map them to roles with `--labels` when training,
for example `--labels 5=positive,*=ignore`. The output is a native folder (datasets/README.md),
built under a `.partial` name and renamed when complete; an unreadable image stops it with the
file named. Crops in which no hand region is found are left out and counted.

    python -m handnet.crop_scenes --data ../shared/datasets/sign-language-digits --out datasets/digit-scenes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from handnet.annotations import NATIVE_FILE, DatasetError, box_to_hand, read_image
from handnet.atomic import building_folders
from handnet.config import parse_names
from handnet.gesture_data import image_folders

# The hand's box stops this many box widths below its top: the rest is forearm.
HAND_LENGTH = 1.25
# A hand region smaller than this share of the crop is not taken for a hand.
MIN_HAND_AREA = 0.05
# ... and one whose colour is no stronger than the wall's by this much (Lab units) is the wall.
MIN_CHROMA_STEP = 5.0


def find_hand(image: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The hand in a crop of one hand on a plain background: ((x0, y0, x1, y1), its pixels as a
    boolean mask), or None where no region large enough stands out."""
    lab = cv2.cvtColor(cv2.GaussianBlur(image, (5, 5), 0), cv2.COLOR_BGR2LAB).astype(np.float32)
    chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    scaled = np.clip(chroma * 4, 0, 255).astype(np.uint8)
    _, skin = cv2.threshold(scaled, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    skin = cv2.morphologyEx(skin, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, regions, stats, _ = cv2.connectedComponentsWithStats(skin)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, width, height, area = stats[largest]
    region = regions == largest
    if not MIN_HAND_AREA * skin.size <= area < skin.size or chroma[region].mean() < chroma[~region].mean() + MIN_CHROMA_STEP:
        return None
    box = int(x), int(y), int(x + width), int(y + min(height, round(HAND_LENGTH * width)))
    return box, region


def flatten_wall(image: np.ndarray, hand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The crop with its lighting made even, and the wall's mean colour. A quadratic in x and y,
    fitted per channel to the pixels well clear of the hand, models the wall's shading
    (vignetting, a lamp to one side); dividing it out keeps the hand's contrast with the wall."""
    height, width = image.shape[:2]
    clear = ~cv2.dilate(hand.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs, ys = xs / width - 0.5, ys / height - 0.5
    terms = np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], -1)
    pixels = image.astype(np.float32)
    if clear.sum() < 50:  # no wall to fit: leave the lighting as it is
        return pixels, np.median(pixels.reshape(-1, 3), 0)
    coef, *_ = np.linalg.lstsq(terms[clear], pixels[clear], rcond=None)
    wall = np.clip(terms @ coef, 1, None)
    colour = pixels[clear].mean(0)
    return pixels * colour / wall, colour


def place_crop(rng: np.random.Generator, image: np.ndarray, box, wall, size=(240, 320), radius: float = 30.0):
    """The crop scaled so that its hand has `radius`, at a random spot of a (height, width) frame
    filled with the `wall` colour. Returns (frame, (x, y, radius)) with the hand's centre in frame
    pixels."""
    height, width = size
    hand = box_to_hand(*box, "")
    scale = radius / hand.radius
    crop = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    reach = min(radius, height / 2, width / 2)
    x, y = rng.uniform(reach, width - reach), rng.uniform(reach, height - reach)
    left, top = int(round(x - hand.x * scale)), int(round(y - hand.y * scale))
    # The crop fades into the wall over its outer 6%, hiding its edges; then the part of it that
    # falls inside the frame is pasted.
    ch, cw = crop.shape[:2]
    rows, cols = np.arange(ch), np.arange(cw)
    edge = np.minimum.outer(np.minimum(rows + 1, ch - rows), np.minimum(cols + 1, cw - cols))
    weight = np.clip(edge / max(1.0, 0.06 * min(ch, cw)), 0, 1)[..., None]
    inside = np.s_[max(0, -top) : max(0, min(ch, height - top)), max(0, -left) : max(0, min(cw, width - left))]
    crop, weight = crop[inside], weight[inside]
    top, left = max(0, top), max(0, left)
    frame = np.empty((height, width, 3), np.float32)
    frame[:] = wall
    window = frame[top : top + crop.shape[0], left : left + crop.shape[1]]
    window[:] = weight * crop + (1 - weight) * window
    frame += rng.normal(0, rng.uniform(1, 4), frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8), (x, y, radius)


def write_scenes(data: str | os.PathLike, out: str | os.PathLike, size=(240, 320), radii=(10.0, 80.0),
                 per_image: int = 1, seed: int = 0, progress: bool = True, only: list[str] = ()) -> dict:
    """Every crop of `data` (one sub-folder of images per label; only those named in `only`, if
    given) as `per_image` scenes in the native folder `out`. Returns {"scenes": n, "no_hand":
    [files left out]}."""
    folders = image_folders(Path(data))
    missing = sorted(set(only) - set(folders))
    if missing:
        raise DatasetError(f"{data}: no sub-folder of images named {', '.join(missing)}")
    folders = {name: images for name, images in folders.items() if not only or name in only}
    if not folders:
        raise DatasetError(f"{data}: no sub-folders of images")
    out = Path(out)
    rng = np.random.default_rng(seed)
    entries, no_hand = [], []
    jobs = [(label, path) for label, paths in folders.items() for path in paths]
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        jobs = tqdm(jobs, desc=f"scenes -> {out}", unit="crop", file=sys.stdout,
                    mininterval=0.5 if sys.stdout.isatty() else 15)
    with building_folders(out) as (partial,):
        for label, path in jobs:
            image = read_image(path)
            found = find_hand(image)
            if found is None:
                no_hand.append(str(path))
                continue
            box, hand = found
            flat, wall = flatten_wall(image, hand)
            for k in range(per_image):
                radius = float(np.exp(rng.uniform(*np.log(radii))))
                frame, (x, y, r) = place_crop(rng, flat, box, wall, size, radius)
                name = f"{label}_{path.stem}_{k}.jpg"
                cv2.imwrite(str(partial / name), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
                entries.append({"file": name, "hands": [{"x": round(x, 2), "y": round(y, 2), "radius": round(r, 2),
                                                         "label": label}]})
        doc = {"format": "handnet", "version": 1, "labels": sorted(folders),
               "source": {"name": "handnet.crop_scenes", "data": str(data), "seed": seed, "size": list(size),
                          "radii": list(radii), "per_image": per_image, "only": list(only)},
               "images": entries}
        (partial / NATIVE_FILE).write_text(json.dumps(doc, indent=1) + "\n")
    return {"scenes": len(entries), "no_hand": no_hand}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.crop_scenes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder with one sub-folder of hand crops per label")
    parser.add_argument("--out", required=True, help="native dataset folder to (re)create")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--radii", type=float, nargs=2, default=(10.0, 80.0), metavar=("MIN", "MAX"),
                        help="range of hand radii in the scenes, in pixels (log-uniform)")
    parser.add_argument("--per-image", type=int, default=1, help="scenes made from each crop")
    parser.add_argument("--only", default="", help="comma-separated sub-folders to use (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.radii[0] <= args.radii[1]:
        parser.error("--radii needs 0 < MIN <= MAX")
    if args.per_image < 1:
        parser.error("--per-image must be at least 1")
    try:
        only = parse_names(args.only)
        result = write_scenes(args.data, args.out, tuple(args.size), tuple(args.radii), args.per_image, args.seed,
                              only=only)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{result['scenes']} scenes -> {args.out}; {len(result['no_hand'])} crops with no hand found")
    for path in result["no_hand"][:10]:
        print(f"  no hand: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
