"""Where frames come from: a webcam, a stream URL, a video file, an image file or a folder.

    source = open_source("0")          # webcam 0; "video.mp4", "photo.jpg", "frames/", "rtsp://..."
    try:
        for frame in source:           # Frame(image, index, time, name)
            ...
    finally:
        source.close()
    print(source.end_reason)           # why it stopped

Live sources (webcams, stream URLs) are read by a background thread that keeps only the newest
frame, so a slow consumer never waits on the camera and never works on a stale frame; frames it
had no time for are counted in `dropped`. A live source that stops delivering is retried a few
times, then ends with a reason. Files are read in order, every frame, on the caller's thread.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from handnet.annotations import DatasetError, read_image

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
LIVE_RETRIES = 5  # failed reads in a row before a live source gives up
RETRY_PAUSE = 0.2  # seconds between them
FIRST_FRAME_TIMEOUT = 10.0  # seconds a freshly opened camera may take to deliver


class SourceError(Exception):
    """A source that cannot be opened: missing file, no camera, unreadable stream."""


@dataclasses.dataclass(frozen=True)
class Frame:
    image: np.ndarray | None  # (H, W, 3) uint8 BGR; None for an unreadable image in a folder
    index: int  # 0, 1, 2, ... in delivery order
    time: float  # seconds: the video's timestamp, or since the source opened (live, images)
    name: str | None = None  # image file name, for folders and single images
    error: str | None = None  # why image is None


class Source:
    """Iterable of Frames. live: frames come in real time and may be dropped."""

    live = False
    stills = False  # unrelated photos, not a video: each is scored on its own, never tracked
    fps: float | None = None

    def __init__(self):
        self.end_reason = ""
        self.failed = False  # it broke down (a camera that stopped delivering), rather than ended
        self.dropped = 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def open_source(spec: str) -> Source:
    """A Source for a webcam index ("0"), a URL ("rtsp://..."), a video, an image or a folder.
    SourceError when it cannot be opened."""
    spec = str(spec)
    if spec.isdigit():
        return LiveSource(int(spec), f"camera {spec}")
    if "://" in spec:
        return LiveSource(spec, spec)
    path = Path(spec)
    if path.is_dir():
        return ImageSource(image_files(path), path)
    if not path.exists():
        raise SourceError(f"{spec}: no such file, folder or camera")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource([path], path)
    return VideoSource(path)


class ImageSource(Source):
    """Image files in order; an unreadable one still yields a Frame (image None, error set)."""

    stills = True

    def __init__(self, paths: list[Path], origin: Path):
        super().__init__()
        if not paths:
            raise SourceError(f"{origin}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        self.paths = paths

    def __iter__(self) -> Iterator[Frame]:
        started = time.monotonic()
        for index, path in enumerate(self.paths):
            try:  # the training pipeline's decoder: truncated files are errors, not half-grey frames
                image, error = read_image(path), None
            except DatasetError as err:
                image, error = None, str(err).removeprefix(f"{path}: ")
            yield Frame(image, index, time.monotonic() - started, path.name, error)
        self.end_reason = "the image done" if len(self.paths) == 1 else f"all {len(self.paths)} images done"


class VideoSource(Source):
    """Every frame of a video file, timed by the file itself."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise SourceError(f"{path}: not a video OpenCV can read")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else 30.0

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self.capture.read()
            if not ok:
                break
            yield Frame(image, index, index / self.fps)
            index += 1
        self.end_reason = f"end of video after {index} frames"

    def close(self) -> None:
        self.capture.release()


class LiveSource(Source):
    """A webcam or stream, read by a background thread that keeps the newest frame only."""

    live = True

    def __init__(self, device: int | str, name: str, retries: int = LIVE_RETRIES):
        super().__init__()
        self.name, self.retries = name, retries
        self.capture = _quietly_open(device)
        if not self.capture.isOpened():
            self.capture.release()
            hint = " (none attached, or in use by another program)" if isinstance(device, int) else ""
            raise SourceError(f"{name}: cannot open{hint}")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None
        self._lock = threading.Condition()
        self._latest: tuple[np.ndarray, float] | None = None
        self._taken = 0  # frames the consumer took
        self._stopped = False
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._read_loop, name=f"capture {name}", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        failures = 0
        while not self._stopped:
            ok, image = self.capture.read()
            if not ok or image is None:
                failures += 1
                if failures > self.retries:
                    self.failed = True
                    self._finish(f"{self.name} stopped delivering frames ({self.retries} retries failed)")
                    return
                time.sleep(RETRY_PAUSE)
                continue
            failures = 0
            with self._lock:
                if self._latest is not None:
                    self.dropped += 1  # the consumer never saw the previous one
                self._latest = (image, time.monotonic() - self._started)
                self._lock.notify_all()

    def _finish(self, reason: str) -> None:
        with self._lock:
            self._stopped = True
            self.end_reason = self.end_reason or reason
            self._lock.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT
        while True:
            with self._lock:
                while self._latest is None and not self._stopped:
                    first = self._taken == 0
                    if not self._lock.wait(max(0.0, deadline - time.monotonic()) if first else None):
                        self._stopped = self.failed = True
                        self.end_reason = f"{self.name} opened but delivered no frame in {FIRST_FRAME_TIMEOUT:g} s"
                if self._latest is None:
                    return
                (image, stamp), self._latest = self._latest, None
                index = self._taken
                self._taken += 1
            yield Frame(image, index, stamp)

    def close(self) -> None:
        self._finish("closed")
        self._thread.join(timeout=2.0)
        self.capture.release()


def _quietly_open(device: int | str) -> cv2.VideoCapture:
    """cv2.VideoCapture without OpenCV's own warnings while it probes backends: a failure gets
    one clear SourceError from the caller instead."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(device)
    finally:
        logging.setLogLevel(level)


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The images open_source would read from a folder, in its order."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
