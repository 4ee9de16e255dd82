"""Bubbles: pop the bubbles that float up the screen by touching them with an open hand; grab one
with a fist, carry it, and open your hand to pop it for two points.

    python examples/bubbles.py                         # first webcam, the shipped model
    python examples/bubbles.py --source clip.mp4 --model runs/default/model-int8.tflite
    SDL_VIDEODRIVER=dummy python examples/bubbles.py --source clip.mp4 --seconds 10   # no window

A small game driven by handnet.runtime the way any game would use it: HandDetector finds the
hands in each camera frame, HandTracker gives them stable ids and smooth motion, and the game
only sees TrackedHand(x, y, radius, label, ...) in screen pixels; label is "open" or "other" (a
fist, with a model that has a hand map: older files see open hands only, so nothing is grabbed). The webcam picture is mirrored, so
moving your hand right moves it right on screen. Esc or q quits.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from handnet.peaks import OTHER  # noqa: E402
from handnet.runtime import HandDetector, HandTracker  # noqa: E402
from handnet.sources import SourceError, open_source  # noqa: E402

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "handnet-fast-int8.tflite"
SCREEN = (960, 720)  # width, height


@dataclasses.dataclass
class Bubble:
    x: float
    y: float
    radius: float
    speed: float  # pixels per second, upwards
    hue: int
    held_by: int | None = None  # the track id of the fist that holds it


class BubbleGame:
    """The rules, free of pygame and cameras: bubbles rise, hands pop them, the clock runs."""

    def __init__(self, width: int, height: int, seconds: float = 60.0, seed: int = 0,
                 spawn_every: float = 0.6):
        self.width, self.height = width, height
        self.time_left = seconds
        self.spawn_every = spawn_every
        self.random = random.Random(seed)
        self.bubbles: list[Bubble] = []
        self.popped: list[tuple[Bubble, float]] = []  # bubble, seconds since popped (for the burst)
        self.score = 0
        self._until_spawn = 0.0

    @property
    def over(self) -> bool:
        return self.time_left <= 0

    def update(self, hands, dt: float) -> int:
        """Advance by dt seconds with this frame's hands (screen pixels, with label and track_id);
        returns bubbles popped. An open hand pops what it touches (1 point); a fist (label
        "other") grabs a free bubble it touches and carries it; the bubble pops when that hand
        opens (2 points) and floats on when the hand is lost."""
        if self.over:
            return 0
        self.time_left = max(0.0, self.time_left - dt)
        self._until_spawn -= dt
        while self._until_spawn <= 0:
            self._spawn()
            self._until_spawn += self.spawn_every
        tracks = {h.track_id: h for h in hands if getattr(h, "track_id", None) is not None}
        released = []
        for b in self.bubbles:
            holder = tracks.get(b.held_by)
            if holder is None:
                b.held_by = None
                b.y -= b.speed * dt
            elif holder.label == OTHER:
                b.x, b.y = holder.x, holder.y
            else:
                released.append(b)
        fists = [h for h in hands if h.label == OTHER and h.track_id in tracks]
        for b in self.bubbles:
            holding = {c.held_by for c in self.bubbles}
            fist = next((h for h in fists if h.track_id not in holding and touches(h, b)), None)
            if b.held_by is None and fist is not None:
                b.held_by = fist.track_id
        hit = [b for b in self.bubbles if b.held_by is None and any(touches(h, b) for h in hands if h.label != OTHER)]
        self.bubbles = [b for b in self.bubbles if b not in hit and b not in released and b.y + b.radius > 0]
        gone = hit + released
        self.popped = [(b, age + dt) for b, age in self.popped if age < 0.4] + [(b, 0.0) for b in gone]
        self.score += len(hit) + 2 * len(released)
        return len(gone)

    def _spawn(self) -> None:
        r = self.random.uniform(0.04, 0.08) * self.height
        self.bubbles.append(Bubble(self.random.uniform(r, self.width - r), self.height + r, r,
                                   self.random.uniform(0.12, 0.3) * self.height, self.random.randrange(360)))


def touches(hand, bubble: Bubble) -> bool:
    """A hand pops a bubble when their circles overlap."""
    return math.hypot(hand.x - bubble.x, hand.y - bubble.y) <= hand.radius + bubble.radius


def fit_hands(hands, frame_hw, screen_wh):
    """Hands from camera-frame pixels to screen pixels (the picture is stretched to the screen)."""
    sx, sy = screen_wh[0] / frame_hw[1], screen_wh[1] / frame_hw[0]
    return [dataclasses.replace(h, x=h.x * sx, y=h.y * sy, radius=h.radius * math.sqrt(sx * sy)) for h in hands]


def draw(screen, pygame, font, frame: np.ndarray, game: BubbleGame, hands) -> None:
    rgb = cv2.cvtColor(cv2.resize(frame, screen.get_size()), cv2.COLOR_BGR2RGB)
    screen.blit(pygame.surfarray.make_surface(rgb.swapaxes(0, 1)), (0, 0))
    for b in game.bubbles:
        colour = pygame.Color(0)
        colour.hsva = (b.hue, 60, 100, 100)
        pygame.draw.circle(screen, colour, (round(b.x), round(b.y)), round(b.radius), 4)
    for b, age in game.popped:
        pygame.draw.circle(screen, (255, 255, 255), (round(b.x), round(b.y)), round(b.radius * (1 + 2 * age)), 2)
    for h in hands:  # magenta open, sky blue fist (draw.hand_colour, in RGB)
        colour = (0, 200, 255) if h.label == OTHER else (255, 80, 255)
        pygame.draw.circle(screen, colour, (round(h.x), round(h.y)), max(4, round(h.radius)), 3)
    text = f"score {game.score}   time {math.ceil(game.time_left)}" if not game.over else f"game over: {game.score}"
    screen.blit(font.render(text, True, (255, 255, 255), (0, 0, 0)), (12, 10))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="handnet .tflite (default: the shipped "
                        "models/handnet-fast-int8.tflite)")
    parser.add_argument("--source", default="0", help="webcam index, video file or stream URL (default 0)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of a game (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the detector")
    parser.add_argument("--seed", type=int, default=0, help="bubble layout")
    args = parser.parse_args(argv)
    try:
        detector = HandDetector(args.model, num_threads=args.threads)
        source = open_source(args.source)
    except (SourceError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import pygame  # noqa: PLC0415 (only the game needs it)

    pygame.init()
    screen = pygame.display.set_mode(SCREEN)
    pygame.display.set_caption("handnet bubbles")
    font = pygame.font.Font(None, 40)
    game = BubbleGame(*SCREEN, seconds=args.seconds, seed=args.seed)
    tracker = HandTracker()
    frames = hands_seen = 0
    last_time = None
    try:
        for frame in source:
            if any(e.type == pygame.QUIT or (e.type == pygame.KEYDOWN and e.key in (pygame.K_ESCAPE, pygame.K_q))
                   for e in pygame.event.get()):
                break
            image = frame.image[:, ::-1].copy() if source.live else frame.image  # a mirror for webcams
            hands = fit_hands(tracker.update(detector.detect(image), frame.time), image.shape[:2], SCREEN)
            game.update(hands, 0.0 if last_time is None else frame.time - last_time)
            last_time = frame.time
            frames += 1
            hands_seen += len(hands)
            draw(screen, pygame, font, image, game, hands)
            pygame.display.flip()
            if game.over:
                break
    except KeyboardInterrupt:
        pass
    finally:
        source.close()
        pygame.quit()
    print(f"score {game.score} in {frames} frames ({hands_seen} hands seen)")
    return 3 if source.failed else 0


if __name__ == "__main__":
    sys.exit(main())
