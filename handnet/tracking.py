"""Hands a game can use: stable ids across frames and One Euro smoothing. NumPy-free, pure Python.

    tracker = HandTracker()
    for frame, t in frames:
        for hand in tracker.update(detector.detect(frame), t):
            print(hand.track_id, hand.x, hand.y, hand.radius)

Detections of consecutive frames are associated greedily, closest first, where closeness is the
centre distance in units of the track's radius (so a near hand may move farther in pixels than a
far one). A track that finds no detection coasts, unseen, for `max_missed` frames before its id
is retired; ids are never reused. Position and radius go through One Euro filters (Casiez et al.,
CHI 2012): smooth when a hand is still, little lag when it moves fast.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time

from handnet.peaks import Detection

MIN_GATE_RADIUS = 8.0  # pixels; far hands get at least this much room to move between frames


@dataclasses.dataclass(frozen=True)
class TrackedHand:
    x: float  # smoothed centre, frame pixels
    y: float
    radius: float  # smoothed, frame pixels
    score: float  # this frame's detection score
    label: str  # the track's label ("open" / "other"), which changes only after label_frames frames in a row
    track_id: int  # stable while the hand stays in view; never reused
    age: int  # frames this track has been seen in, this one included
    gesture: str | None = None  # the vote of the track's last gesture_votes gestures, if classified
    gesture_score: float = 0.0  # mean score of the winning gesture's votes
    open_score: float | None = None  # this frame's detection's open_score

    @property
    def openness(self) -> float:
        return self.score if self.open_score is None else self.open_score


class OneEuroFilter:
    """One Euro filter of a scalar signal sampled at increasing times (seconds).

    min_cutoff (Hz): smoothing of a still signal (lower: smoother, more lag).
    beta: how fast the cutoff rises with speed (higher: less lag when moving, in 1/signal unit).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("One Euro filter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: float | None = None
        self.speed = 0.0
        self.time: float | None = None

    def __call__(self, value: float, t: float) -> float:
        if self.value is None or self.time is None or t <= self.time:
            # First sample, or a repeated timestamp: nothing to differentiate over.
            if self.value is None:
                self.value, self.time = float(value), t
            return self.value
        dt = t - self.time
        speed = (value - self.value) / dt
        self.speed += _alpha(self.d_cutoff, dt) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * abs(self.speed)
        self.value += _alpha(cutoff, dt) * (value - self.value)
        self.time = t
        return self.value


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclasses.dataclass
class _Track:
    track_id: int
    label: str
    filters: tuple[OneEuroFilter, OneEuroFilter, OneEuroFilter]
    x: float
    y: float
    radius: float
    age: int = 1
    missed: int = 0
    gestures: collections.deque = dataclasses.field(default_factory=collections.deque)  # (name, score)
    challenger: str = ""  # a label other than the track's, seen in the last `challenges` frames in a row
    challenges: int = 0

    def observe(self, det: Detection, t: float) -> None:
        fx, fy, fr = self.filters
        self.x, self.y, self.radius = fx(det.x, t), fy(det.y, t), fr(det.radius, t)

    def relabel(self, label: str, frames: int) -> None:
        """Take `label` once it has been seen `frames` frames in a row: hysteresis, so one noisy
        frame does not turn a grab (a fist, `other`) into a release (open) and back."""
        if label == self.label:
            self.challenger, self.challenges = "", 0
            return
        self.challenges = self.challenges + 1 if label == self.challenger else 1
        self.challenger = label
        if self.challenges >= frames:
            self.label, self.challenger, self.challenges = label, "", 0

    def vote(self) -> tuple[str | None, float]:
        """The most frequent recent gesture (ties: the latest of them) and its mean score."""
        if not self.gestures:
            return None, 0.0
        names = [name for name, _ in self.gestures]
        best = max(set(names), key=lambda n: (names.count(n), max(i for i, m in enumerate(names) if m == n)))
        return best, sum(score for name, score in self.gestures if name == best) / names.count(best)


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    max_distance: float = 1.5  # association gate, in track radii
    max_missed: int = 5  # frames a track may go unseen before its id is retired
    min_cutoff: float = 1.0  # One Euro: Hz
    beta: float = 0.02  # One Euro: per pixel/second
    d_cutoff: float = 1.0  # One Euro: Hz
    smooth: bool = True  # False: raw detections, ids only
    gesture_votes: int = 5  # a track's gesture is the vote of its last N frames; 1 = no voting
    min_age: int = 1  # frames a track must be seen in before it is reported: 2 or 3 hide one-frame
    # false alarms at a frame or two of delay for a new hand; 1 reports every detection at once
    label_frames: int = 2  # frames in a row a track must be seen with a new label (open / other) before
    # it takes it; 1 follows every frame's detection


class HandTracker:
    """Detections per frame -> TrackedHand per frame, with stable track ids."""

    def __init__(self, config: TrackerConfig | None = None, **options):
        self.config = dataclasses.replace(config or TrackerConfig(), **options)
        c = self.config
        if c.max_distance <= 0 or c.max_missed < 0 or c.gesture_votes < 1 or c.min_age < 1 or c.label_frames < 1:
            raise ValueError("HandTracker needs max_distance > 0, max_missed >= 0, gesture_votes >= 1, min_age >= 1 "
                             "and label_frames >= 1")
        # Checked here, not at the first filtered frame, so a bad value stops a run before it writes anything;
        # NaN would pass the filter's own comparisons and write "x": NaN into the JSON lines.
        for name, value, low in (("min_cutoff", c.min_cutoff, 0), ("beta", c.beta, None), ("d_cutoff", c.d_cutoff, 0)):
            if not math.isfinite(value) or value < 0 or value == low:
                raise ValueError(f"{name} must be a finite number {'above' if low == 0 else 'of at least'} 0, got {value}")
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self._tracks.clear()

    def update(self, detections: list[Detection], t: float | None = None) -> list[TrackedHand]:
        """Hands seen in this frame whose tracks are at least min_age frames old, strongest first.
        t: the frame's time in seconds (default: now); video files should pass their own timestamps."""
        t = time.monotonic() if t is None else float(t)
        matches = self._associate(detections)
        hands = []
        for det_index, track in matches:
            det = detections[det_index]
            if self.config.smooth:
                track.observe(det, t)
            else:
                self._copy(track, det)
            track.relabel(det.label, self.config.label_frames)
            track.age += 1
            track.missed = 0
            self._record_gesture(track, det)
            hands.append(self._hand(track, det))
        matched = {id(track) for _, track in matches}
        for track in self._tracks:
            if id(track) not in matched:
                track.missed += 1
        self._tracks = [track for track in self._tracks if track.missed <= self.config.max_missed]
        seen = {det_index for det_index, _ in matches}
        for k, det in enumerate(detections):
            if k not in seen:
                track = self._start(det, t)
                hands.append(self._hand(track, det))
        return sorted((h for h in hands if h.age >= self.config.min_age), key=lambda h: -h.score)

    def _associate(self, detections: list[Detection]) -> list[tuple[int, _Track]]:
        pairs = []
        for k, det in enumerate(detections):
            for track in self._tracks:
                cost = math.hypot(det.x - track.x, det.y - track.y) / max(track.radius, MIN_GATE_RADIUS)
                if cost <= self.config.max_distance:
                    pairs.append((cost, k, track))
        pairs.sort(key=lambda p: p[0])
        used_dets, used_tracks, matches = set(), set(), []
        for _, k, track in pairs:
            if k not in used_dets and id(track) not in used_tracks:
                used_dets.add(k)
                used_tracks.add(id(track))
                matches.append((k, track))
        return matches

    def _start(self, det: Detection, t: float) -> _Track:
        c = self.config
        filters = tuple(OneEuroFilter(c.min_cutoff, c.beta, c.d_cutoff) for _ in range(3))
        track = _Track(self._next_id, det.label, filters, det.x, det.y, det.radius)
        track.observe(det, t)
        self._record_gesture(track, det)
        self._next_id += 1
        self._tracks.append(track)
        return track

    @staticmethod
    def _copy(track: _Track, det: Detection) -> None:
        track.x, track.y, track.radius = det.x, det.y, det.radius

    def _record_gesture(self, track: _Track, det: Detection) -> None:
        if det.gesture is not None:
            track.gestures.append((det.gesture, det.gesture_score))
            while len(track.gestures) > self.config.gesture_votes:
                track.gestures.popleft()

    @staticmethod
    def _hand(track: _Track, det: Detection) -> TrackedHand:
        gesture, gesture_score = track.vote()
        return TrackedHand(track.x, track.y, track.radius, det.score, track.label, track.track_id, track.age,
                           gesture, gesture_score, det.open_score)
