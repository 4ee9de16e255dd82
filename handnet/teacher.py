"""A teacher that labels hands: MediaPipe Hands over a folder, written as handnet annotations.

    .venv-teacher/bin/python -m handnet.teacher datasets/mine
    .venv-teacher/bin/python -m handnet.teacher ../shared/datasets/people-at-distance/gmdcsa24-fall-homes --out datasets/gmdcsa24-teacher
    .venv-teacher/bin/python -m handnet.teacher --agree ../shared/datasets/linto-webcam-gestures ../shared/datasets/hagrid-eval-only

Each hand MediaPipe finds becomes a handnet hand: its centre and radius from the 21 landmarks
(hand_from_landmarks), `open` when all five fingers are extended and `other` otherwise
(is_open), and `"teacher": <MediaPipe's hand score>` so a person can tell the teacher's hands
from their own. A person's annotations are never changed: a teacher hand is added only where no
annotated hand is (its centre inside no annotated hand's box or radius), and images already in
the folder's hands.json keep every hand they had. The folder's hands.json is written whole or
not at all; a folder of VOC or YOLO boxes needs --out, a new folder for hands.json whose entries
point back at the images (their boxes come along as hands).

--agree measures the teacher against the human boxes of annotated sets, every hand by the
benchmark's rule (a teacher centre inside a box), the open / other label on matched hands and
the radius against the box rule's radius; docs/teacher.md holds the figures.

MediaPipe runs in its own environment (requirements-teacher.txt): the runtime and training never
import it. Its hand models ship inside the pinned wheel; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from handnet.annotations import (IMAGE_SUFFIXES, NATIVE_FILE, DatasetError, detect_format, load_samples, read_dataset,
                                 read_image)
from handnet.atomic import check_output_file, refuse_inputs_as_outputs, write_text
from handnet.metrics import within

MIN_SCORE = 0.5  # MediaPipe Hands' own min_detection_confidence
MAX_HANDS = 6
# Landmarks (MediaPipe's hand model): 0 wrist; per finger MCP, PIP (IP for the thumb), DIP, tip.
WRIST, THUMB, FINGERS = 0, (2, 3, 4), ((5, 6, 8), (9, 10, 12), (13, 14, 16), (17, 18, 20))
# A human box takes in wrist and knuckles loosely; the landmarks' box is tighter. Measured on the
# boxed real sets with --agree (docs/teacher.md): the median human radius over the landmarks'.
RADIUS_SCALE = 1.3


def is_open(points: np.ndarray) -> bool:
    """points (21, 2) in pixels -> whether every finger is extended: each fingertip farther from
    the wrist than its middle joint, and the thumb's tip farther from the little finger's knuckle
    than its own middle joint (a thumb folded across the palm is not)."""
    wrist = points[WRIST]
    for _, middle, tip in FINGERS:
        if np.linalg.norm(points[tip] - wrist) <= np.linalg.norm(points[middle] - wrist):
            return False
    knuckle = points[FINGERS[-1][0]]
    return np.linalg.norm(points[THUMB[2]] - knuckle) > np.linalg.norm(points[THUMB[1]] - knuckle)


def hand_from_landmarks(points: np.ndarray) -> tuple[float, float, float, tuple[float, ...]]:
    """points (21, 2) in pixels -> (x, y, radius, box): the landmarks' box, its centre, and the
    radius the box rule (annotations.box_to_hand: half the shorter side) gives it, times
    RADIUS_SCALE."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    radius = RADIUS_SCALE * min(x1 - x0, y1 - y0) / 2
    return float((x0 + x1) / 2), float((y0 + y1) / 2), float(max(radius, 1.0)), (float(x0), float(y0), float(x1), float(y1))


class Teacher:
    """MediaPipe Hands on single images. hands(frame) -> [{x, y, radius, label, teacher}]."""

    def __init__(self, min_score: float = MIN_SCORE, max_hands: int = MAX_HANDS):
        try:
            import mediapipe as mp  # noqa: PLC0415
        except ImportError as err:
            raise RuntimeError("the teacher needs mediapipe: python -m venv .venv-teacher && "
                               ".venv-teacher/bin/pip install -r requirements-teacher.txt, then run it with "
                               ".venv-teacher/bin/python") from err
        self._hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=max_hands,
                                               min_detection_confidence=min_score)

    def hands(self, frame: np.ndarray) -> list[dict]:
        """(H, W, 3) uint8 BGR -> the hands MediaPipe finds, in the frame's pixels."""
        height, width = frame.shape[:2]
        result = self._hands.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        found = []
        for landmarks, handedness in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
            points = np.array([(p.x * width, p.y * height) for p in landmarks.landmark], np.float64)
            x, y, radius, box = hand_from_landmarks(points)
            found.append({"x": round(x, 2), "y": round(y, 2), "radius": round(radius, 2),
                          "label": "open" if is_open(points) else "other",
                          "teacher": round(float(handedness.classification[0].score), 3), "box": box})
        return found

    def close(self) -> None:
        self._hands.close()


def is_annotated(hand: dict, annotated) -> bool:
    """Whether a teacher hand lies on a hand already annotated (annotations.Hand), by the
    benchmark's rule: its centre inside that hand's box, or within its radius."""
    point = _Point(hand["x"], hand["y"])
    return any(within(point, h, rule="box") for h in annotated)


class _Point:
    """A hand centre where metrics.within wants a detection."""

    def __init__(self, x: float, y: float):
        self.x, self.y = x, y


def annotated_hands(root: Path) -> dict[Path, list]:
    """{resolved image path: [annotations.Hand]} of a folder's own annotations, any format; {}
    for a folder without any."""
    if detect_format_or_none(root) is None:
        return {}
    return {Path(s.path).resolve(): list(s.hands) for s in read_dataset(root)}


def label_folder(root: Path, out: Path, teacher: Teacher, progress: bool = True) -> dict:
    """Write out/hands.json: every image under root with the hands annotated so far (root's own
    annotations, any format; a hands.json's entries keep all they hold) plus the teacher's where
    none is. Returns counts."""
    from tqdm import tqdm  # noqa: PLC0415

    doc = json.loads((out / NATIVE_FILE).read_text()) if (out / NATIVE_FILE).is_file() else \
        {"format": "handnet", "version": 1, "labels": ["open", "other"], "images": []}
    entries = {str(e["file"]): e for e in doc["images"]}
    annotated = annotated_hands(root)
    masks = {str(e["mask"]) for e in doc["images"] if e.get("mask")}
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                    and Path(os.path.relpath(p, out)).as_posix() not in masks)
    counts = {"images": 0, "kept": 0, "added": 0, "unreadable": 0}
    for path in tqdm(images, desc=f"teacher {root.name}", unit="img", disable=not progress, file=sys.stderr):
        key = Path(os.path.relpath(path, out)).as_posix()
        try:
            frame = read_image(path)
        except DatasetError:
            counts["unreadable"] += 1
            continue
        known = annotated.get(path.resolve(), [])
        entry = entries.get(key) or {"file": key, "hands": [
            {"x": h.x, "y": h.y, "radius": h.radius, "label": h.label} for h in known]}
        added = [{k: v for k, v in hand.items() if k != "box"} for hand in teacher.hands(frame)
                 if not is_annotated(hand, known)]
        entries[key] = {**entry, "hands": [*entry["hands"], *added]}
        counts["images"] += 1
        counts["kept"] += len(entry["hands"])
        counts["added"] += len(added)
    doc["images"] = [entries[k] for k in sorted(entries)]
    write_text(out / NATIVE_FILE, json.dumps(doc, indent=1) + "\n")
    return counts


def agreement(root: Path, teacher: Teacher, labels: str = "open-other", progress: bool = True) -> dict:
    """The teacher against a set's human boxes: every hand by the box rule (precision: teacher
    hands inside a box; recall: boxes holding a teacher hand), open / other agreement on matched
    hands, and the median human radius over the teacher's."""
    from tqdm import tqdm  # noqa: PLC0415

    samples = load_samples([str(root)], labels)
    found = boxes = hits = matched = same_label = 0
    ratios, confusion = [], {("open", "open"): 0, ("open", "other"): 0, ("other", "open"): 0, ("other", "other"): 0}
    for sample in tqdm(samples, desc=f"agree {root.name}", unit="img", disable=not progress, file=sys.stderr):
        taught = teacher.hands(read_image(sample.path))
        humans = list(sample.hands)
        boxes += len(humans)
        found += len(taught)
        used = set()
        for hand in sorted(taught, key=lambda h: -h["teacher"]):
            point = _Point(hand["x"], hand["y"])
            best = min((k for k, h in enumerate(humans) if k not in used and within(point, h, rule="box")),
                       key=lambda k: math.hypot(humans[k].x - hand["x"], humans[k].y - hand["y"]), default=None)
            if best is None:
                continue
            used.add(best)
            matched += 1
            human = "open" if humans[best].role == "positive" else "other"
            confusion[(human, hand["label"])] += 1
            same_label += human == hand["label"]
            ratios.append(humans[best].radius / hand["radius"])
        hits += len(used)
    precision = matched / found if found else None
    recall = hits / boxes if boxes else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"set": root.name, "images": len(samples), "boxes": boxes, "teacher_hands": found,
            "precision": precision, "recall": recall, "f1": f1,
            "label_agreement": same_label / matched if matched else None,
            "confusion": {f"{h}->{t}": n for (h, t), n in confusion.items()},
            "radius_ratio": float(np.median(ratios)) if ratios else None}


def detect_format_or_none(root: Path) -> str | None:
    try:
        return detect_format(root)
    except DatasetError:
        return None


def format_agreement(rows: list[dict]) -> str:
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["| set | images | boxes | teacher hands | precision | recall | F1 | open/other agreement | "
             "open->other, other->open | human / teacher radius |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["confusion"]
        lines.append(f"| {r['set']} | {r['images']} | {r['boxes']} | {r['teacher_hands']} | {fmt(r['precision'])} | "
                     f"{fmt(r['recall'])} | {fmt(r['f1'])} | {fmt(r['label_agreement'])} | "
                     f"{c['open->other']}, {c['other->open']} | {fmt(r['radius_ratio'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.teacher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", help="folder(s) of images")
    parser.add_argument("--out", help="folder for hands.json (default: the data folder itself; needed for a folder "
                                      "of VOC or YOLO boxes, or of several folders)")
    parser.add_argument("--agree", action="store_true", help="measure the teacher against each folder's human "
                                                             "boxes instead of labelling; writes nothing unless --json")
    parser.add_argument("--json", help="--agree: also write the figures to this JSON file")
    parser.add_argument("--min-score", type=float, default=MIN_SCORE, help="MediaPipe's detection confidence "
                        "(default: %(default)s)")
    args = parser.parse_args(argv)
    roots = [Path(d) for d in args.data]
    for root in roots:
        if not root.is_dir():
            print(f"error: {root}: folder not found", file=sys.stderr)
            return 2
    if not args.agree:
        if len(roots) > 1:
            print("error: label one folder at a time (one hands.json each)", file=sys.stderr)
            return 2
        out = Path(args.out) if args.out else roots[0]
        found = detect_format_or_none(roots[0])
        if out.resolve() == roots[0].resolve() and found not in (None, "native"):
            print(f"error: {roots[0]} holds {found.upper()} annotations; pass --out NEW_FOLDER for the hands.json "
                  f"(the folder's own files stay as they are)", file=sys.stderr)
            return 2
        if out.resolve() != roots[0].resolve() and (found == "native" or (out / NATIVE_FILE).exists()):
            print(f"error: the teacher adds to a folder's own hands.json only: run it without --out on "
                  f"{roots[0] if found == 'native' else out}", file=sys.stderr)
            return 2
    try:
        refuse_inputs_as_outputs({"--json": args.json}, roots)
        if args.json:
            check_output_file(args.json, "--json")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        teacher = Teacher(args.min_score)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if args.agree:
            rows = [agreement(root, teacher) for root in roots]
            print(format_agreement(rows))
            if args.json:
                write_text(args.json, json.dumps(rows, indent=1) + "\n")
            return 0
        out.mkdir(parents=True, exist_ok=True)
        counts = label_folder(roots[0], out, teacher)
    except (DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        teacher.close()
    print(f"{counts['images']} images: {counts['kept']} annotated hands kept, {counts['added']} added by the teacher"
          + (f", {counts['unreadable']} unreadable images skipped" if counts["unreadable"] else "")
          + f"; wrote {out / NATIVE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
