"""Outputs that appear whole or not at all.

Datasets, gesture folders, models, videos and JSON files are written under a `.partial` name
beside their final path and renamed into place once complete, so a failed or
interrupted run never leaves half an output under the name a user, or the next run, opens.
Standard library only: the runtime's video writer uses it too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


def partial_folder(path: str | os.PathLike) -> Path:
    """Where the folder `path` is built: `<name>.partial` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def partial_file(path: str | os.PathLike) -> Path:
    """Where the file `path` is written: `<stem>.partial<suffix>` beside it, so writers that go by
    the suffix (Keras' `.keras`, OpenCV's `.mp4`) still know the format."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def publish_folder(partial: Path, out: Path) -> None:
    """Put the finished folder `partial` in the place of `out`, removing whatever `out` held."""
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)


@contextlib.contextmanager
def building_folders(*outs: str | os.PathLike):
    """Yields one fresh, empty partial_folder per path in `outs` (a list, in their order). When
    the block ends, each replaces its path; when it raises (Ctrl-C too), they are removed and
    the paths keep what they held."""
    outs = [Path(out) for out in outs]
    partials = [partial_folder(out) for out in outs]
    for partial in partials:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    try:
        yield partials
    except BaseException:
        for partial in partials:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    for partial, out in zip(partials, outs):
        publish_folder(partial, out)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` (its folder created) through partial_file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_file(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """write_bytes for UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"))


def refuse_inputs_as_outputs(outputs: dict, inputs) -> None:
    """ValueError naming the flag when an output path is also an input: the same file by any path
    or link, or a file inside an input folder (a folder of images is read whole). outputs:
    {flag: path or None}; inputs: paths (files or folders; missing ones and None are skipped).
    Call it before anything is opened for writing."""
    inputs = [Path(p) for p in inputs if p is not None and not str(p).isdigit() and "://" not in str(p)]
    for flag, out in outputs.items():
        if out is None or not Path(out).exists():
            continue
        for source in (p for p in inputs if p.exists()):
            inside = source.is_dir() and Path(out).resolve().is_relative_to(source.resolve())
            if inside or (source.is_file() and os.path.samefile(out, source)):
                raise ValueError(f"{flag} {out}: that is an input ({source}); writing it would destroy it, "
                                 f"so pick another output path")


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Make sure the file `path` can be written before any work is done: its folder exists or is
    created now. ValueError naming the flag otherwise, or when `path` is a folder."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path}: that is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot create its folder ({err.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"{flag} {path}: its folder is not writable")
    return path
