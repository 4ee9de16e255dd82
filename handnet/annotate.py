"""Mark hands in a folder of frames: click a hand's centre and drag out its radius.

    python -m handnet.annotate datasets/mine
    python -m handnet.annotate datasets/mine --model runs/x/model-int8.tflite   # pre-annotate
    python -m handnet.annotate datasets/mine --files worst-mine.txt            # only these frames
    .venv-teacher/bin/python -m handnet.annotate datasets/mine --teacher       # pre-annotate with MediaPipe

Mouse: drag on empty ground to draw a hand (centre, then radius; a plain click places one of the
last size); drag inside a hand to move it, on its rim to resize it; right-click deletes a hand.
Keys: 1-9 set the label of the selected hand and of new ones; x or Delete deletes the selected
hand; u or Ctrl-Z undoes; space or Enter accepts the frame as it is (hand-free frames too, and
the model's proposals) and moves on; n/d/Right next, p/a/Left previous, f the first frame not
annotated yet; q or Esc quits.

The folder's hands.json (datasets/README.md) lists the frames annotated so far; the others are
still to do. It is rewritten after every change, to a temporary file that then replaces it, so a
crash loses nothing and a restart resumes at the first frame not annotated yet.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from handnet.annotations import IMAGE_SUFFIXES, NATIVE_FILE, read_image
from handnet.atomic import write_text
from handnet.config import parse_names

WINDOW = "handnet annotate"
DEFAULT_LABELS = ("open", "other")
MAX_VIEW = (800, 1280)  # the largest window (height, width); bigger frames are shown scaled down
RIM = 6  # screen pixels around a circle's edge that grab it for resizing
MIN_DRAG = 3  # screen pixels: a shorter drag is a click
LABEL_COLOURS = ((60, 220, 60), (0, 160, 255), (255, 160, 0), (200, 80, 255), (0, 220, 220),
                 (255, 80, 80), (160, 255, 160), (80, 80, 255), (220, 220, 220))
KEY_LEFT = {81, 2424832, 65361}  # waitKeyEx codes on GTK/Qt, Windows, X11 keysyms
KEY_RIGHT = {83, 2555904, 65363}
KEY_DELETE = {3014656, 65535, 8, 127}


class Annotator:
    """The annotation tool without its window: state, event handlers, rendering, saving.

    Coordinates given to the mouse handlers are image pixels. `propose` (frame -> [(x, y,
    radius, label)]) pre-annotates frames not annotated yet; its hands are saved only once the
    user edits or accepts the frame.
    """

    def __init__(self, root: str | os.PathLike, labels=None, propose=None, files=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: folder not found")
        self.path = self.root / NATIVE_FILE
        self.doc = self._load_doc()
        self.entries: dict[str, list[dict]] = {e["file"]: e["hands"] for e in self.doc["images"]}
        # What else an entry holds (a label mask, width, height) is kept as it was.
        self.extra = {e["file"]: {k: v for k, v in e.items() if k not in ("file", "hands")} for e in self.doc["images"]}
        self.files = self._image_list(files)
        self.labels = list(labels or self.doc.get("labels") or DEFAULT_LABELS)
        for hands in self.entries.values():
            self.labels += [h["label"] for h in hands if h["label"] not in self.labels]
        self.propose = propose
        self.label = 0  # index of the label for new hands
        self.last_radius = 20.0
        self.undo_stack: list[tuple[str, list[dict] | None]] = []
        self.selected: int | None = None
        self.drag: dict | None = None
        self.message = ""
        self.index = -1
        self.go(self.first_unannotated())

    # -- files ------------------------------------------------------------------------------

    def _load_doc(self) -> dict:
        if not self.path.is_file():
            return {"format": "handnet", "version": 1, "labels": list(DEFAULT_LABELS), "images": []}
        try:
            doc = json.loads(self.path.read_text())
            for entry in doc["images"]:
                entry["file"] = str(entry["file"])
                entry["hands"] = [{"x": float(h["x"]), "y": float(h["y"]), "radius": float(h["radius"]),
                                   "label": str(h["label"])} for h in entry.get("hands", [])]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{self.path}: not a handnet annotation file ({type(err).__name__}: {err}); "
                             "fix or move it, the tool will not overwrite it") from None
        return doc

    def _image_list(self, files) -> list[str]:
        masks = {str(extra["mask"]) for extra in self.extra.values() if "mask" in extra}  # not frames
        on_disk = sorted(name for p in self.root.rglob("*")
                         if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                         and (name := p.relative_to(self.root).as_posix()) not in masks)
        if files is None:
            return on_disk
        wanted, root = [], self.root.resolve()
        for name in files:  # paths as given (from the working folder), or relative to the folder
            for candidate in (Path(name).resolve(), (self.root / name).resolve()):
                if candidate.is_relative_to(root) and candidate.relative_to(root).as_posix() in on_disk:
                    wanted.append(candidate.relative_to(root).as_posix())
                    break
        if not wanted:
            raise ValueError(f"none of the {len(files)} listed files is an image in {self.root}")
        return wanted

    def save(self) -> None:
        """Rewrite hands.json atomically: every annotated frame, in file order."""
        self.doc["labels"] = self.labels
        self.doc["images"] = [{"file": f, **self.extra.get(f, {}), "hands": self.entries[f]} for f in sorted(self.entries)]
        write_text(self.path, json.dumps(self.doc, indent=1) + "\n")

    # -- navigation -------------------------------------------------------------------------

    @property
    def file(self) -> str:
        return self.files[self.index]

    @property
    def annotated(self) -> bool:
        return self.file in self.entries

    def first_unannotated(self) -> int:
        return next((i for i, f in enumerate(self.files) if f not in self.entries), 0)

    def go(self, index: int) -> None:
        if not self.files:
            raise ValueError(f"{self.root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        index = min(max(index, 0), len(self.files) - 1)
        if index == self.index:
            return
        self.index = index
        self.image = read_image(self.root / self.file)
        self.selected, self.drag = None, None
        if self.annotated:
            self.hands = copy.deepcopy(self.entries[self.file])
        else:
            proposals = self.propose(self.image) if self.propose else []
            self.hands = [{"x": float(x), "y": float(y), "radius": float(r), "label": str(label)}
                          for x, y, r, label in proposals]
            self.labels += [h["label"] for h in self.hands if h["label"] not in self.labels]

    # -- editing ----------------------------------------------------------------------------

    def commit(self) -> None:
        """Store the current frame's hands (marking it annotated), save, remember for undo."""
        self.undo_stack.append((self.file, copy.deepcopy(self.entries.get(self.file))))
        self.entries[self.file] = copy.deepcopy(self.hands)
        self.save()

    def undo(self) -> None:
        if not self.undo_stack:
            self.message = "nothing to undo"
            return
        file, previous = self.undo_stack.pop()
        if previous is None:
            self.entries.pop(file, None)
        else:
            self.entries[file] = previous
        self.save()
        self.index = -1  # reload that frame as saved
        self.go(self.files.index(file) if file in self.files else 0)
        self.message = f"undone ({file})"

    def hit(self, x: float, y: float, scale: float = 1.0) -> tuple[int | None, str]:
        """The hand under an image point and how it was hit: 'rim' (resize) or 'inside' (move).
        scale: screen pixels per image pixel, so the rim keeps its width on screen."""
        best, how, best_gap = None, "", math.inf
        for i, h in enumerate(self.hands):
            dist = math.hypot(x - h["x"], y - h["y"])
            gap = abs(dist - h["radius"]) * scale
            if gap <= RIM and gap < best_gap:
                best, how, best_gap = i, "rim", gap
            elif dist < h["radius"] and best is None:
                best, how = i, "inside"
        return best, how

    def mouse_down(self, x: float, y: float, scale: float = 1.0) -> None:
        x, y = self._clamp(x, y)
        index, how = self.hit(x, y, scale)
        if index is None:
            self.hands.append({"x": x, "y": y, "radius": 0.0, "label": self.labels[self.label]})
            index, how = len(self.hands) - 1, "new"
        self.selected = index
        hand = self.hands[index]
        self.drag = {"how": how, "start": (x, y), "origin": (hand["x"], hand["y"]), "moved": False, "scale": scale}

    def mouse_move(self, x: float, y: float) -> None:
        if self.drag is None:
            return
        x, y = self._clamp(x, y)
        d, hand = self.drag, self.hands[self.selected]
        sx, sy = d["start"]
        if math.hypot(x - sx, y - sy) * d["scale"] >= MIN_DRAG:
            d["moved"] = True
        if not d["moved"]:
            return
        if d["how"] == "inside":
            hand["x"], hand["y"] = self._clamp(d["origin"][0] + x - sx, d["origin"][1] + y - sy)
        else:
            hand["radius"] = math.hypot(x - hand["x"], y - hand["y"])

    def mouse_up(self, x: float, y: float) -> None:
        if self.drag is None:
            return
        self.mouse_move(x, y)
        d, hand = self.drag, self.hands[self.selected]
        self.drag = None
        if d["how"] == "new" and not d["moved"]:
            hand["radius"] = self.last_radius  # a click places a hand of the last size
        elif not d["moved"]:
            return  # a click on a hand only selects it
        hand["radius"] = max(1.0, round(hand["radius"], 2))
        hand["x"], hand["y"] = round(hand["x"], 2), round(hand["y"], 2)
        self.last_radius = hand["radius"]
        self.commit()

    def delete_at(self, x: float, y: float, scale: float = 1.0) -> None:
        index, _ = self.hit(x, y, scale)
        if index is not None:
            self.selected = index
            self.delete_selected()

    def delete_selected(self) -> None:
        if self.selected is None:
            self.message = "select a hand first"
            return
        del self.hands[self.selected]
        self.selected = None
        self.commit()

    def set_label(self, number: int) -> None:
        """Number key 1-9: label `number` for the selected hand and for new ones."""
        if not 1 <= number <= len(self.labels):
            self.message = f"no label {number} (labels: {self._label_list()})"
            return
        self.label = number - 1
        if self.selected is not None:
            self.hands[self.selected]["label"] = self.labels[self.label]
            self.commit()

    def accept(self) -> None:
        """Mark the frame annotated with the hands shown (none: a hand-free frame); next frame."""
        self.commit()
        self.go(self.index + 1)

    def key(self, code: int) -> bool:
        """Handle one key (cv2.waitKeyEx code); False when the user quits."""
        self.message = ""
        char = chr(code) if 0 < code < 256 else ""
        if char in ("q", "Q", "\x1b"):
            return False
        if char.isdigit() and char != "0":
            self.set_label(int(char))
        elif char in ("x", "X") or code in KEY_DELETE:
            self.delete_selected()
        elif char in ("u", "U", "\x1a"):
            self.undo()
        elif char in (" ", "\r", "\n"):
            self.accept()
        elif char in ("n", "d") or code in KEY_RIGHT:
            self.go(self.index + 1)
        elif char in ("p", "a") or code in KEY_LEFT:
            self.go(self.index - 1)
        elif char == "f":
            self.go(self.first_unannotated())
        return True

    def _clamp(self, x: float, y: float) -> tuple[float, float]:
        h, w = self.image.shape[:2]
        return float(np.clip(x, 0, w)), float(np.clip(y, 0, h))

    def _label_list(self) -> str:
        return " ".join(f"{i + 1}:{name}" for i, name in enumerate(self.labels[:9]))

    # -- drawing ----------------------------------------------------------------------------

    def view_scale(self) -> float:
        h, w = self.image.shape[:2]
        return min(1.0, MAX_VIEW[0] / h, MAX_VIEW[1] / w)

    def render(self) -> np.ndarray:
        """The window's picture: the frame (scaled to fit), its hands, and two status lines."""
        scale = self.view_scale()
        view = cv2.resize(self.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else self.image.copy()
        for i, h in enumerate(self.hands):
            colour = LABEL_COLOURS[self.labels.index(h["label"]) % len(LABEL_COLOURS)]
            centre = (round(h["x"] * scale), round(h["y"] * scale))
            cv2.circle(view, centre, max(1, round(h["radius"] * scale)), colour, 3 if i == self.selected else 1, cv2.LINE_AA)
            cv2.drawMarker(view, centre, colour, cv2.MARKER_CROSS, 8, 1)
            cv2.putText(view, h["label"], (centre[0] + 4, centre[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        state = "annotated" if self.annotated else ("model proposals: space accepts" if self.hands else "not annotated")
        done = sum(1 for f in self.files if f in self.entries)
        top = f"{self.index + 1}/{len(self.files)} {self.file} | {state} | {done} done"
        bottom = self.message or f"new: {self.labels[self.label]} | {self._label_list()} | u undo, space accept, f next to do"
        bar = np.zeros((40, view.shape[1], 3), np.uint8)
        cv2.putText(bar, top, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(bar, bottom, (4, 33), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
        return np.vstack([bar, view])

    def on_mouse(self, event: int, x: int, y: int, flags: int, param=None) -> None:
        """cv2.setMouseCallback handler: window pixels -> image pixels -> handlers."""
        scale = self.view_scale()
        ix, iy = x / scale, (y - 40) / scale  # 40: the status bar above the frame
        if event == cv2.EVENT_LBUTTONDOWN:
            self.mouse_down(ix, iy, scale)
        elif event == cv2.EVENT_MOUSEMOVE:
            self.mouse_move(ix, iy)
        elif event == cv2.EVENT_LBUTTONUP:
            self.mouse_up(ix, iy)
        elif event == cv2.EVENT_RBUTTONDOWN:
            self.delete_at(ix, iy, scale)


def run_window(annotator: Annotator) -> None:
    from handnet.live import open_window  # noqa: PLC0415

    open_window(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL,
                instead="annotating needs a screen: run it on a desktop, or over ssh -X")
    cv2.setMouseCallback(WINDOW, annotator.on_mouse)
    try:
        while True:
            cv2.imshow(WINDOW, annotator.render())
            code = cv2.waitKeyEx(30)
            if code != -1 and not annotator.key(code):
                break
            if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                break
    finally:
        cv2.destroyAllWindows()


def model_proposer(path: str, threshold: float | None = None):
    """A `propose` function from a trained detector (.tflite or .keras)."""
    from handnet.live import open_detector  # noqa: PLC0415

    detector = open_detector(path, score_threshold=threshold)
    return lambda frame: [(d.x, d.y, d.radius, d.label) for d in detector.detect(frame)]


def teacher_proposer():
    """A `propose` function from MediaPipe Hands (handnet.teacher; its own environment)."""
    from handnet.teacher import Teacher  # noqa: PLC0415

    teacher = Teacher()
    return lambda frame: [(h["x"], h["y"], h["radius"], h["label"]) for h in teacher.hands(frame)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.annotate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="folder of frames (hands.json is created or updated in it)")
    parser.add_argument("--labels", help="comma-separated labels for the number keys "
                                         "(default: the folder's own list, else open,other)")
    parser.add_argument("--model", help="pre-annotate frames not annotated yet with this detector")
    parser.add_argument("--threshold", type=float, help="score threshold for --model (default: the model's)")
    parser.add_argument("--teacher", action="store_true", help="pre-annotate frames not annotated yet with MediaPipe "
                        "Hands, open / other by finger extension (handnet.teacher; run from .venv-teacher)")
    parser.add_argument("--files", help="a text file of frames to visit, one per line "
                                        "(python -m handnet.evaluate --worst writes one)")
    args = parser.parse_args(argv)
    try:
        labels = parse_names(args.labels) if args.labels else None
        files = Path(args.files).read_text().split() if args.files else None
        if args.model and args.teacher:
            raise ValueError("--model and --teacher both pre-annotate: pick one")
        propose = model_proposer(args.model, args.threshold) if args.model else teacher_proposer() if args.teacher else None
        annotator = Annotator(args.data, labels, propose, files)
        run_window(annotator)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    done = sum(1 for f in annotator.files if f in annotator.entries) if "annotator" in locals() else 0
    print(f"{args.data}: {done} frames annotated; saved in {Path(args.data) / NATIVE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
