"""Find hands live in a webcam, a stream, a video, an image or a folder of images.

    python infer.py --source 0
    python infer.py --model runs/mine/model-int8.tflite --source clip.mp4 --headless --json hands.jsonl --save out.mp4
    python infer.py --model runs/mine/model.keras --source datasets/mine --headless --json hands.jsonl
    python infer.py --source 0 --gestures runs/gestures/gestures-int8.tflite

The window shows each hand (circle of its radius, track id, label, score; open hands magenta,
other hands such as fists sky blue and dashed), the frame rate end to end and of the model
alone, and milliseconds per stage; q or Esc quits. --json writes one line per frame or image:
{"image", "frame", "time", "hands": [{"x", "y", "radius", "score", "label", "open_score",
"track_id"}]}, in the original frame's pixels; label is "open" or "other" for a model with a hand
map (the shipped one), whose score is the every-hand map's and open_score the open map's (a
model without one finds open hands alone: open_score = score). With --gestures, each hand also
carries "gesture" (a known gesture or na, voted over the track's last frames) and
"gesture_score". Images (a folder, a file) are each scored on their own: no tracking across them.

Exit codes: 0 done (source ended, q, Esc or Ctrl-C); 2 bad input (model, source, missing camera,
no display); 3 a live source broke down (a camera that stopped delivering frames).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handnet.atomic import check_output_file, refuse_inputs_as_outputs
from handnet.live import check_video_name, open_detector, run_live
from handnet.runtime import GestureClassifier, check_threshold
from handnet.sources import SourceError, open_source
from handnet.tracking import HandTracker, TrackerConfig

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "handnet-fast-int8.tflite"  # shipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help=".tflite (no TensorFlow needed) or a run's "
                        "model.keras (default: the shipped models/handnet-fast-int8.tflite)")
    parser.add_argument("--source", default="0", help="webcam index, video file, image, folder of images or "
                        "stream URL (default: 0, the first webcam)")
    parser.add_argument("--headless", action="store_true", help="no window (servers, tests, batch jobs)")
    parser.add_argument("--save", metavar="OUT.mp4", help="write the annotated frames as a video")
    parser.add_argument("--json", metavar="OUT.jsonl", help="write the hands of every frame, one JSON line each")
    parser.add_argument("--gestures", metavar="G.tflite", help="a gesture classifier (python train.py gestures) "
                        "that labels every hand with its gesture, or na")
    parser.add_argument("--threshold", type=float, help="score threshold (default: the model's)")
    parser.add_argument("--threads", type=int, help="CPU threads for a .tflite model (default: LiteRT's choice)")
    parser.add_argument("--no-track", action="store_true", help="raw detections: no track ids, no smoothing")
    defaults = TrackerConfig()
    parser.add_argument("--min-cutoff", type=float, default=defaults.min_cutoff,
                        help="One Euro filter: smoothing of a still hand, Hz (lower is smoother, default %(default)s)")
    parser.add_argument("--beta", type=float, default=defaults.beta,
                        help="One Euro filter: lag reduction when moving (higher follows faster, default %(default)s)")
    parser.add_argument("--max-missed", type=int, default=defaults.max_missed,
                        help="frames a hand may vanish and keep its track id (default %(default)s)")
    parser.add_argument("--gesture-votes", type=int, default=defaults.gesture_votes,
                        help="a tracked hand's gesture is the vote of its last N frames (default %(default)s)")
    parser.add_argument("--min-age", type=int, default=defaults.min_age,
                        help="frames a hand must be seen in before it is shown: 2-3 hide one-frame false "
                             "alarms (default %(default)s: at once)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: use at least 1 thread")
    if args.threshold is not None:
        try:
            check_threshold(args.threshold, "--threshold")
        except ValueError as err:
            parser.error(str(err))
    try:
        refuse_inputs_as_outputs({"--json": args.json, "--save": args.save}, [args.model, args.gestures, args.source])
        if args.save:
            check_video_name(args.save)
        for flag, path in (("--json", args.json), ("--save", args.save)):
            if path:
                check_output_file(path, flag)
        tracker = None if args.no_track else HandTracker(min_cutoff=args.min_cutoff, beta=args.beta,
                                                         max_missed=args.max_missed, gesture_votes=args.gesture_votes,
                                                         min_age=args.min_age)
        detector = open_detector(args.model, args.threads, args.threshold)
        gestures = GestureClassifier(args.gestures, num_threads=args.threads) if args.gestures else None
        source = open_source(args.source)
    except (SourceError, FileNotFoundError, ValueError) as err:
        missing_default = args.model == str(DEFAULT_MODEL) and not DEFAULT_MODEL.is_file()
        hint = " (train one with python train.py, or pass --model)" if missing_default else ""
        print(f"error: {err}{hint}", file=sys.stderr)
        return 2
    try:
        summary = run_live(detector, source, tracker, show=not args.headless, save=args.save, json_path=args.json,
                           log=lambda line: print(line, file=sys.stderr), gestures=gestures)
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary.text())
    for path in (args.json, args.save):
        if path:
            print(f"wrote {path}")
    if summary.frames and summary.unreadable == summary.frames:
        print(f"error: {args.source}: no readable image", file=sys.stderr)
        return 2
    return 3 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
