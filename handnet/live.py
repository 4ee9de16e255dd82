"""The loop behind infer.py: source -> detector -> tracker -> window, video and JSON lines.

A .tflite model runs through handnet.runtime (TensorFlow is never imported); a .keras model is
rebuilt from the config.json beside it. Each frame's time is split into stages: capture (waiting
for the frame), preprocess (letterbox, quantize), inference, peaks (peak finding and tracking)
and draw (overlay, window, writers).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from handnet.atomic import partial_file
from handnet.draw import draw_overlay
from handnet.letterbox import apply_letterbox
from handnet.peaks import detect_hands
from handnet.runtime import HandDetector, check_frame
from handnet.sources import Frame, Source
from handnet.tracking import HandTracker

STAGES = ("capture", "preprocess", "inference", "peaks", "gestures", "draw")
# The overlay's short names of the stages: whole words would run past a 640-pixel frame.
STAGE_TAGS = {"capture": "cam", "preprocess": "prep", "inference": "net", "peaks": "peaks", "draw": "draw",
              "gestures": "gest"}
WINDOW = "handnet"
QUIT_KEYS = {ord("q"), ord("Q"), 27}  # q, Esc


def open_detector(path: str | os.PathLike, num_threads: int | None = None, score_threshold: float | None = None):
    """HandDetector for a .tflite, KerasDetector for a .keras (its config.json beside it)."""
    if str(path).endswith(".keras"):
        return KerasDetector(path, score_threshold)
    return HandDetector(path, num_threads=num_threads, score_threshold=score_threshold)


class KerasDetector:
    """HandDetector's interface (detect, timings, score_threshold) for a trained model.keras."""

    def __init__(self, path: str | os.PathLike, score_threshold: float | None = None):
        from handnet.evaluate import detection_label, load_model  # noqa: PLC0415 (imports keras)

        self.model, self.config = load_model(path)
        self.label = detection_label(self.config)
        self.score_threshold = self.config.score_threshold if score_threshold is None else float(score_threshold)
        self.open_threshold = self.config.open_threshold
        self.timings: dict[str, float] = {}

    def detect(self, frame: np.ndarray):
        check_frame(frame)
        c = self.config
        started = time.perf_counter()
        image, box = apply_letterbox(frame, c.input_size)
        inputs = image[None].astype(np.float32)
        invoked = time.perf_counter()
        heatmap = np.asarray(self.model(inputs, training=False))[0]
        found = time.perf_counter()
        hands = detect_hands(heatmap if c.deploys_hand_map else heatmap[..., 0], box, self.label, self.score_threshold,
                             c.stride, c.sigma_scale, c.min_sigma, c.radius_knots, self.open_threshold)
        self.timings = {"preprocess": 1000 * (invoked - started), "inference": 1000 * (found - invoked),
                        "peaks": 1000 * (time.perf_counter() - found)}
        return hands


@dataclasses.dataclass
class Summary:
    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    hands: int = 0
    unreadable: int = 0
    end_reason: str = ""
    failed: bool = False  # the source broke down (a camera that stopped delivering)
    stage_ms: dict = dataclasses.field(default_factory=lambda: {stage: 0.0 for stage in STAGES})

    def mean_ms(self, stage: str) -> float:
        return self.stage_ms[stage] / max(1, self.frames)

    def text(self) -> str:
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        model_ms = self.mean_ms("inference")
        stages = ", ".join(f"{stage} {self.mean_ms(stage):.1f}" for stage in STAGES
                           if stage != "gestures" or self.stage_ms[stage])
        lines = [f"{self.end_reason}: {plural(self.frames, 'frame')} in {self.seconds:.1f} s, {fps:.1f} fps end to "
                 f"end, {1000 / model_ms if model_ms else 0:.0f} fps model only; {plural(self.hands, 'hand')}",
                 f"mean ms per frame: {stages}"]
        if self.dropped:
            lines.append(f"{self.dropped} camera frames dropped (newer ones were ready before they were used)")
        if self.unreadable:
            lines.append(f"{plural(self.unreadable, 'unreadable image')} (see 'error' in the JSON lines)")
        return "\n".join(lines)


class JsonLines:
    """One JSON object per frame, flushed as written, so the file is valid at every moment."""

    def __init__(self, path: str | os.PathLike):
        self.file = open(path, "w", encoding="utf-8")

    def write(self, frame: Frame, hands, tracked: bool) -> None:
        record = {"image": frame.name, "frame": frame.index, "time": round(frame.time, 4),
                  "hands": [hand_record(h, tracked) for h in hands]}
        if frame.error:
            record["error"] = frame.error
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def hand_record(hand, tracked: bool) -> dict:
    record = {"x": round(hand.x, 2), "y": round(hand.y, 2), "radius": round(hand.radius, 2),
              "score": round(hand.score, 4), "label": hand.label, "open_score": round(hand.openness, 4),
              "track_id": hand.track_id if tracked else None}
    if hand.gesture is not None:  # with infer.py --gestures
        record.update(gesture=hand.gesture, gesture_score=round(hand.gesture_score, 4))
    return record


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")  # containers OpenCV's writers know by name


def check_video_name(path: str | os.PathLike) -> Path:
    """path as a Path; ValueError unless its suffix names a container OpenCV writes (infer.py
    checks --save with it before anything is opened)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--save {path}: name a video file ({', '.join(VIDEO_SUFFIXES)})")
    return path


class VideoOut:
    """An .mp4 (or .avi, .mkv, .mov, .m4v) of the annotated frames. Written under a temporary
    name and renamed when closed, so the named file is always a finished video."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = check_video_name(path)
        self.partial = partial_file(self.path)
        self.fps = fps
        self.writer = None
        self.size = None

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self.size = (image.shape[1], image.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.partial), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise OSError(f"{self.path}: OpenCV cannot write this video (try a .mp4 or .avi name)")
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        self.writer.write(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            # A writer can open and then write nothing at all (a frame too large for the codec).
            if not self.partial.is_file() or self.partial.stat().st_size == 0:
                self.partial.unlink(missing_ok=True)
                raise OSError(f"{self.path}: OpenCV cannot write this video (frames {self.size[0]} x {self.size[1]}; "
                              "try a .mp4 or .avi name, or smaller frames)")
            os.replace(self.partial, self.path)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def run_live(detector, source: Source, tracker: HandTracker | None = None, show: bool = True,
             save: str | None = None, json_path: str | None = None, log=print, gestures=None) -> Summary:
    """Run until the source ends, q/Esc is pressed, the window closes or Ctrl-C. Writers are
    closed and the window destroyed whatever happens. Images (source.stills) are never tracked.
    gestures: a GestureClassifier that labels every detected hand (the tracker then votes over
    each track's last frames). Returns the Summary."""
    summary = Summary()
    if tracker is not None and source.stills:
        # Tracking would smooth each photo's hands towards the last photo's, by wall-clock time.
        log("images are scored each on its own: no tracking across them")
        tracker = None
    if show:
        try:
            open_window()
        except RuntimeError:
            source.close()
            raise
    jsonl = JsonLines(json_path) if json_path else None
    video = VideoOut(save, source.fps or 30.0) if save else None
    rate = _Rate()
    started = time.perf_counter()
    quitting = False
    try:
        frames = iter(source)
        while True:
            waited = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                summary.end_reason = source.end_reason or "source ended"
                summary.failed = source.failed
                break
            stage = {"capture": 1000 * (time.perf_counter() - waited)}
            if frame.image is None:
                summary.unreadable += 1
                log(f"{frame.name}: {frame.error}, skipped")
                hands = []
                stage.update(preprocess=0.0, inference=0.0, peaks=0.0)
            else:
                detections = detector.detect(frame.image)
                stage.update(detector.timings)
                if gestures:
                    detections = gestures.label(frame.image, detections)
                    stage.update(gestures.timings)
                tracked_at = time.perf_counter()
                hands = tracker.update(detections, frame.time) if tracker else detections
                stage["peaks"] += 1000 * (time.perf_counter() - tracked_at)
            drawing = time.perf_counter()
            if jsonl:
                jsonl.write(frame, hands, tracker is not None)
            if frame.image is not None and (show or video):
                status = rate.status(stage)
                shown = draw_overlay(frame.image, hands, status, tracker is not None)
                if video:
                    video.write(shown)
                quitting = show and not show_frame(shown)
            stage["draw"] = 1000 * (time.perf_counter() - drawing)
            rate.tick(stage)
            summary.frames += 1
            summary.hands += len(hands)
            for name in STAGES:
                summary.stage_ms[name] += stage.get(name, 0.0)
            if quitting:
                summary.end_reason = "quit"
                break
    except KeyboardInterrupt:
        summary.end_reason = "interrupted (Ctrl-C)"
    finally:
        summary.seconds = time.perf_counter() - started
        summary.dropped = source.dropped
        source.close()
        if jsonl:
            jsonl.close()
        if video:
            video.close()
        if show:
            cv2.destroyAllWindows()
    return summary


def open_window(name: str = WINDOW, flags: int = cv2.WINDOW_NORMAL, instead: str = "run with --headless") -> None:
    """instead: what the error suggests doing without a window (annotate has no headless mode)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # OpenCV's Qt backend aborts the whole process without a display; say so first.
        raise RuntimeError(f"no display (DISPLAY is not set); {instead}")
    try:
        cv2.namedWindow(name, flags)
    except cv2.error as err:
        raise RuntimeError(f"cannot open a window ({err.msg.strip()}); {instead}") from err


def show_frame(image: np.ndarray) -> bool:
    """Show a frame; False once the user pressed q or Esc or closed the window."""
    cv2.imshow(WINDOW, image)
    key = cv2.waitKey(1) & 0xFF
    closed = cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
    return key not in QUIT_KEYS and not closed


class _Rate:
    """Smoothed end-to-end and model-only frame rates for the status line."""

    def __init__(self, smoothing: float = 0.1):
        self.smoothing = smoothing
        self.last = None
        self.frame_ms = None
        self.stage_ms: dict[str, float] = {}

    def tick(self, stage: dict) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.frame_ms = self._mix(self.frame_ms, 1000 * (now - self.last))
        self.last = now
        for name, ms in stage.items():
            self.stage_ms[name] = self._mix(self.stage_ms.get(name), ms)

    def _mix(self, old, new):
        return new if old is None else old + self.smoothing * (new - old)

    def status(self, stage: dict) -> str:
        ms = {**stage, **self.stage_ms}
        fps = 1000 / self.frame_ms if self.frame_ms else 0.0
        model = 1000 / ms["inference"] if ms.get("inference") else 0.0
        parts = " ".join(f"{STAGE_TAGS[name]} {ms.get(name, 0.0):.1f}" for name in STAGES
                         if name != "gestures" or name in ms)
        return f"{fps:.0f} fps (model {model:.0f}) | ms: {parts}"
