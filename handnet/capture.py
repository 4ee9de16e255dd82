"""Record webcam frames into a dataset folder, ready for handnet.annotate.

    python -m handnet.capture --out datasets/mine                   # window: keys below
    python -m handnet.capture --out datasets/mine --every 250       # record 4 frames a second
    python -m handnet.capture --out datasets/mine --headless --count 100 --every 500

In the window: space takes one frame after the countdown; r starts recording a frame every
--every milliseconds (after the countdown) and stops it again; q or Esc quits. The countdown
gives you time to get your hands into place.

Frames are JPEGs named frame_000000.jpg, frame_000001.jpg, ... continuing after the highest
number already in the folder. A file is created only if the name is free (exclusive create), so
existing frames are never overwritten, even by two recorders at once. hands.json is left to the
annotation tool: a frame it does not list is a frame still to annotate.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from handnet.atomic import refuse_inputs_as_outputs
from handnet.sources import SourceError, open_source

WINDOW = "handnet capture"
NAME = re.compile(r"^frame_(\d+)\.jpg$")
JPEG_QUALITY = 95


class FrameWriter:
    """Numbered JPEGs in a folder, never overwriting one."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.out.iterdir() if (m := NAME.match(p.name))]
        self.next = max(numbers, default=-1) + 1
        self.saved: list[Path] = []

    def write(self, image: np.ndarray) -> Path:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError("could not encode the frame as JPEG")
        while True:
            path = self.out / f"frame_{self.next:06d}.jpg"
            self.next += 1
            try:
                with open(path, "xb") as f:  # exclusive: fails if the name was taken meanwhile
                    f.write(data.tobytes())
            except FileExistsError:
                continue
            self.saved.append(path)
            return path


class Recorder:
    """What to save when: single shots and timed recording, each after a countdown. Times are
    seconds on any steady clock (the source's frame times)."""

    def __init__(self, writer: FrameWriter, every_ms: float = 500, countdown: float = 3.0):
        if every_ms <= 0:
            raise ValueError(f"--every must be positive, got {every_ms}")
        self.writer = writer
        self.every = every_ms / 1000
        self.countdown = countdown
        self.pending: tuple[str, float] | None = None  # ("shot" | "record", when it starts)
        self.recording = False
        self.next_due = 0.0

    def shot(self, now: float) -> None:
        self.pending = ("shot", now + self.countdown)

    def toggle_recording(self, now: float) -> None:
        if self.recording or (self.pending and self.pending[0] == "record"):
            self.recording, self.pending = False, None
        else:
            self.pending = ("record", now + self.countdown)

    def step(self, image: np.ndarray, now: float) -> Path | None:
        """Feed the newest frame; returns the path it was saved to, if it was saved."""
        if self.pending and now >= self.pending[1]:
            kind, _ = self.pending
            self.pending = None
            if kind == "shot":
                return self.writer.write(image)
            self.recording, self.next_due = True, now
        if self.recording and now >= self.next_due:
            # Keep to the grid, but after a stall restart it instead of catching up.
            self.next_due += self.every
            if self.next_due <= now:
                self.next_due = now + self.every
            return self.writer.write(image)
        return None

    def status(self, now: float) -> str:
        count = len(self.writer.saved)
        if self.pending:
            what = "shot" if self.pending[0] == "shot" else "recording"
            return f"{what} in {max(0.0, self.pending[1] - now):.1f} s | {count} saved"
        if self.recording:
            return f"REC every {self.every * 1000:.0f} ms | {count} saved | r stops"
        return f"{count} saved | space: one frame, r: record, q: quit"


def draw_status(image: np.ndarray, recorder: Recorder, now: float) -> np.ndarray:
    view = image.copy()
    cv2.rectangle(view, (0, 0), (view.shape[1], 24), (0, 0, 0), -1)
    colour = (0, 0, 255) if recorder.recording else (255, 255, 255)
    cv2.putText(view, recorder.status(now), (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    if recorder.pending:
        left = max(0.0, recorder.pending[1] - now)
        text = str(int(np.ceil(left))) if left > 0 else ""
        scale = view.shape[0] / 120
        size, _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 4)
        origin = ((view.shape[1] - size[0]) // 2, (view.shape[0] + size[1]) // 2)
        cv2.putText(view, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 255), 4, cv2.LINE_AA)
    return view


def run(source, recorder: Recorder, show: bool = True, count: int | None = None) -> int:
    """Feed the source's frames to the recorder until quit, the source ends, or `count` frames
    are saved. Headless (show=False) recording starts at once. Returns the frames saved."""
    from handnet.live import QUIT_KEYS, open_window  # noqa: PLC0415

    if show:
        open_window(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    try:
        for frame in source:
            if frame.image is None:
                continue
            if not show and not recorder.recording and recorder.pending is None:
                recorder.toggle_recording(frame.time)
            path = recorder.step(frame.image, frame.time)
            if path is not None and not show:
                print(f"saved {path}", flush=True)
            if count is not None and len(recorder.writer.saved) >= count:
                break
            if show:
                cv2.imshow(WINDOW, draw_status(frame.image, recorder, frame.time))
                key = cv2.waitKey(1) & 0xFF
                if key in QUIT_KEYS or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    break
                if key == ord(" "):
                    recorder.shot(frame.time)
                elif key in (ord("r"), ord("R")):
                    recorder.toggle_recording(frame.time)
    except KeyboardInterrupt:
        pass
    finally:
        source.close()
        if show:
            cv2.destroyAllWindows()
    return len(recorder.writer.saved)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.capture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="dataset folder (created if missing)")
    parser.add_argument("--source", default="0", help="webcam index, stream URL or video file (default: 0)")
    parser.add_argument("--every", type=float, default=500, help="milliseconds between recorded frames (default: 500)")
    parser.add_argument("--countdown", type=float, default=3.0, help="seconds before a shot or a recording starts")
    parser.add_argument("--headless", action="store_true", help="no window: record from the start (after the countdown)")
    parser.add_argument("--count", type=int, help="stop after this many frames")
    args = parser.parse_args(argv)
    try:
        refuse_inputs_as_outputs({"--out": args.out}, [args.source])
        recorder = Recorder(FrameWriter(args.out), args.every, args.countdown)
        source = open_source(args.source)
        started = time.monotonic()
        saved = run(source, recorder, show=not args.headless, count=args.count)
    except (SourceError, RuntimeError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{saved} frames saved to {args.out} in {time.monotonic() - started:.0f} s"
          + (f" ({source.end_reason})" if source.end_reason else ""))
    if saved:
        print(f"next: python -m handnet.annotate {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
