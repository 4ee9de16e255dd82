"""Live hand detection from a webcam, a video or a folder of images.

    python infer.py --model runs/<name>/model.keras --source 0

Not implemented yet: it arrives with the inference issue (TFLite runtime, tracking, demo game).
Until then, `python -m handnet.evaluate --model runs/<name>/model.keras --data DIR` runs a trained
model over a dataset folder.
"""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    print("infer.py: live inference is not implemented yet (coming with the inference issue); "
          "use `python -m handnet.evaluate --model runs/<name>/model.keras --data DIR` meanwhile",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
