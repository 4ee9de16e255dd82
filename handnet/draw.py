"""Pictures people would rather look at than numbers: overlays, heatmaps, grids, curves."""

from __future__ import annotations

import csv
import io
import os

import cv2
import numpy as np

from handnet.atomic import write_bytes
from handnet.peaks import OTHER, Detection

COLOURS = {"positive": (60, 220, 60), "ignore": (0, 160, 255), "negative": (160, 160, 160)}
DETECTION_COLOUR = (255, 80, 255)
OTHER_COLOUR = (255, 200, 0)  # a hand that is not open (a fist, a side view): sky blue beside magenta


def hand_colour(hand) -> tuple[int, int, int]:
    """Magenta for an open hand (or a model's only kind), sky blue for an `other` one."""
    return OTHER_COLOUR if hand.label == OTHER else DETECTION_COLOUR


def draw_hands(frame: np.ndarray, hands=(), detections: list[Detection] = ()) -> np.ndarray:
    """Annotated hands as thin circles by role, detections as thick circles with scores (magenta
    open, sky blue other)."""
    out = frame.copy()
    for h in hands:
        cv2.circle(out, (round(h.x), round(h.y)), max(1, round(h.radius)), COLOURS[h.role], 1, cv2.LINE_AA)
    for d in detections:
        centre = (round(d.x), round(d.y))
        cv2.circle(out, centre, max(2, round(d.radius)), hand_colour(d), 2, cv2.LINE_AA)
        cv2.putText(out, f"{d.score:.2f}", (centre[0] + 3, centre[1] - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    hand_colour(d), 1, cv2.LINE_AA)
    return out


def draw_overlay(image: np.ndarray, hands, summary_line: str, tracked: bool) -> np.ndarray:
    """infer.py's live view: each hand's circle (magenta open, sky blue other; thin and dashed
    for other) with label, score and (tracked) track id, and a status line on top."""
    out = image.copy()
    scale = max(0.4, min(out.shape[:2]) / 800)
    for h in hands:
        centre, radius, colour = (round(h.x), round(h.y)), max(2, round(h.radius)), hand_colour(h)
        if h.label == OTHER:
            for start in range(0, 360, 30):  # dashes: told apart without colour too
                cv2.ellipse(out, centre, (radius, radius), 0, start, start + 18, colour, 2, cv2.LINE_AA)
        else:
            cv2.circle(out, centre, radius, colour, 2, cv2.LINE_AA)
        tag = f"#{h.track_id} " if tracked else ""
        name = h.label if h.gesture is None else f"{h.label}:{h.gesture}"
        cv2.putText(out, f"{tag}{name} {h.score:.2f}", (centre[0] - radius, centre[1] - radius - 4),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    cv2.rectangle(out, (0, 0), (out.shape[1], round(22 * scale / 0.4)), (0, 0, 0), -1)
    cv2.putText(out, summary_line, (4, round(15 * scale / 0.4)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    return out


def heatmap_to_bgr(heatmap: np.ndarray, size_hw, weight: np.ndarray | None = None) -> np.ndarray:
    """(h, w) in [0, 1] -> (H, W, 3) uint8 colour map; zero-weight pixels shaded blue."""
    image = cv2.applyColorMap((np.clip(heatmap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    if weight is not None:
        image[weight == 0] = (image[weight == 0] * 0.4 + np.array([120, 40, 0]) * 0.6).astype(np.uint8)
    return cv2.resize(image, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_NEAREST)


def save_grid(path: str | os.PathLike, rows: list[list[np.ndarray]], captions=("image", "target", "prediction")):
    """Rows of equally sized BGR tiles -> one PNG, with a caption bar on top."""
    body = np.vstack([np.hstack(row) for row in rows])
    tile_w = rows[0][0].shape[1]
    bar = np.full((22, body.shape[1], 3), 255, np.uint8)
    for k, caption in enumerate(captions):
        cv2.putText(bar, caption, (k * tile_w + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    save_png(path, np.vstack([bar, body]))


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a BGR image as a PNG, whole or not at all (cv2.imwrite fails without a word)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode a {image.shape} image as PNG")
    write_bytes(path, data.tobytes())


def save_figure(fig, path: str | os.PathLike, dpi: int = 90) -> None:
    """A Matplotlib figure as a PNG, whole or not at all."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_bytes(path, buffer.getvalue())


def plot_curves(history_csv: str | os.PathLike, path: str | os.PathLike) -> None:
    """Training and validation loss per epoch, from Keras' CSVLogger file, as a PNG; with the
    every-hand head, also the heatmap's own part of each (heatmap_loss)."""
    import matplotlib  # noqa: PLC0415 (plotting is optional at import time)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("loss", "val_loss", "heatmap_loss", "val_heatmap_loss"):
        values = [_number(r.get(key)) for r in rows]
        if any(v is not None for v in values):  # CSVLogger writes 'NA' where there was no validation
            ax.plot(epochs, [float("nan") if v is None else v for v in values], marker="o", markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(matrices: list[tuple[str, np.ndarray, list[str]]], columns: list[str],
                   path: str | os.PathLike) -> None:
    """Confusion matrices side by side as a PNG: (title, counts (rows, columns), row names) each,
    sharing the predicted-class names `columns`. Cells show counts, shaded by row share."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(matrices), figsize=(1.6 + 0.55 * len(columns) * len(matrices) + 1.2 * len(matrices),
                                                        1.6 + 0.45 * max(len(rows) for _, _, rows in matrices)),
                             squeeze=False)
    for ax, (title, counts, rows) in zip(axes[0], matrices):
        counts = np.asarray(counts)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_operating_curves(levels, curves: dict[str, np.ndarray], path: str | os.PathLike, title: str) -> None:
    """Unseen gestures sent to na against the known-gesture accuracy kept, one colour per loss:
    curves[loss] is (seeds, levels), NaN where a seed cannot keep a level; each seed a thin line,
    the mean a thick one up to the levels every seed of every loss reaches."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    levels = np.asarray(levels)
    curves = {loss: np.asarray(rows, np.float64).reshape(-1, len(levels)) for loss, rows in curves.items()}
    everywhere = ~np.any([np.isnan(rows).any(axis=0) for rows in curves.values()], axis=0)  # the means pair up
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for (loss, rows), colour in zip(curves.items(), ("tab:blue", "tab:red", "tab:green", "tab:orange")):
        for row in rows:
            ax.plot(levels, row, color=colour, alpha=0.15, lw=1)
        ax.plot(levels[everywhere], rows[:, everywhere].mean(axis=0), color=colour, lw=2.5,
                label=f"{loss}, mean of {len(rows)} seeds")
    ax.set_xlabel("known-gesture accuracy kept on the validation crops (at least)")
    ax.set_ylabel("unseen gestures sent to na (best threshold)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _number(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
