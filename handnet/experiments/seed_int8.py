"""Is `seed` in int8 ten times faster than `seed` in Keras fp32? Paired timings, also where
TensorFlow is not installed.

    python -m handnet.experiments.seed_int8 prepare --out /tmp/seed-int8     # needs TensorFlow
    python -m handnet.experiments.seed_int8 time /tmp/seed-int8 --threads 1 2 --backends jax torch

`prepare` writes a preset's config.json and its fp32 and int8 .tflite files, as handnet.bench
does (untrained: speed does not depend on the weights; int8 calibrated on random frames), plus
BlazePalm full where ../shared/anchors has it. `time` needs only numpy, LiteRT, opencv and
Keras 3 on any backend (TensorFlow, JAX or PyTorch): the Keras model is built from config.json
by handnet.model, on the CPU. So the folder can be carried to a machine with int8 matrix
hardware (AVX-512 VNNI, AMX, ARM dot-product) on which TensorFlow cannot be installed.

Each timing runs in a fresh process pinned to --threads cores from --first-core, so every model
gets the same cores. One pair is the int8 file, then Keras on each backend, back to back; on a
shared machine the ratio within a pair drifts less than medians taken minutes apart. The table
gives each pair's ratio, Keras over int8, against the fastest Keras backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from handnet.bench import ANCHORS, _peak_rss_mb, _stats, _time, machine, work_tflite

BLAZEPALM = "palm_detection_full.tflite"
TARGET_RATIO = 10.0  # issue 3's bar: seed int8 at least 10x seed in Keras fp32


def prepare(out: Path, preset: str = "seed") -> Path:
    """config.json, <preset>-fp32.tflite and <preset>-int8.tflite in out (and BlazePalm full)."""
    from handnet.config import Config  # noqa: PLC0415
    from handnet.export import export_model  # noqa: PLC0415
    from handnet.model import build_model  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    config = Config(preset=preset, data=["(untrained)"])
    model = build_model(config)
    config.save(out / "config.json")
    rng = np.random.default_rng(0)
    frames = [rng.uniform(0, 255, (*config.input_size, 3)).astype(np.float32) for _ in range(8)]
    for mode in ("fp32", "int8"):
        export_model(model, config, mode, out / f"{preset}-{mode}.tflite", frames=frames)
    if (ANCHORS / BLAZEPALM).is_file():
        shutil.copyfile(ANCHORS / BLAZEPALM, out / BLAZEPALM)
    return out


def work_keras(config_path: str, threads: int, runs: int, warmup: int) -> dict:
    """The preset of config_path, built by handnet.model on $KERAS_BACKEND, timed with
    predict_on_batch on one frame of random pixels."""
    import dataclasses  # noqa: PLC0415

    if os.environ.get("KERAS_BACKEND") == "torch":
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
    import keras  # noqa: PLC0415

    from handnet.config import Config  # noqa: PLC0415
    from handnet.model import build_model  # noqa: PLC0415

    config = Config.load(config_path)
    model = build_model(dataclasses.replace(config, backbone_weights="none"))
    if keras.config.dtype_policy().compute_dtype != "float32":
        raise RuntimeError(f"Keras computes in {keras.config.dtype_policy().compute_dtype}, not float32")
    frame = np.random.default_rng(0).uniform(0, 255, (1, *config.input_size, 3)).astype(np.float32)
    result = _stats(_time(lambda: model.predict_on_batch(frame), runs, warmup))
    return {**result, "peak_rss_mb": _peak_rss_mb(), "backend": keras.backend.backend()}


def run_worker(kind: str, path: Path, threads: int, first_core: int, runs: int, warmup: int) -> dict:
    """One timing in a fresh process on cores first_core .. first_core + threads - 1.
    kind: "tflite" or "keras-<backend>"."""
    cores = os.cpu_count() or 1
    if first_core + threads > cores:
        raise ValueError(f"cores {first_core}-{first_core + threads - 1} asked for, this machine has {cores}")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "CUDA_VISIBLE_DEVICES": "",
           "JAX_PLATFORMS": "cpu", **{v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    if kind.startswith("keras-"):
        env["KERAS_BACKEND"] = kind.removeprefix("keras-")
    cmd = [sys.executable, "-m", "handnet.experiments.seed_int8", "--worker", kind, str(path), str(threads),
           str(first_core), str(runs), str(warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed on {path}: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_pairs(folder: Path, threads: list[int], backends: list[str], pairs: int = 2, runs: int = 30,
               keras_runs: int = 10, first_core: int = 0, progress=print) -> list[dict]:
    """Rows {threads, pair, kind, median_ms, p90_ms, peak_rss_mb}: per thread count, BlazePalm
    full once (if the folder has it), then `pairs` times the int8 file and Keras on each backend."""
    config = folder / "config.json"
    preset = json.loads(config.read_text())["preset"]
    int8 = folder / f"{preset}-int8.tflite"
    if not int8.is_file():
        raise FileNotFoundError(f"{int8}: missing; make the folder with `prepare`")
    rows = []
    for count in threads:
        jobs = [(0, "blazepalm", "tflite", folder / BLAZEPALM, runs)] if (folder / BLAZEPALM).is_file() else []
        for pair in range(1, pairs + 1):
            jobs.append((pair, "int8", "tflite", int8, runs))
            jobs += [(pair, f"keras-{b}", f"keras-{b}", config, keras_runs) for b in backends]
        for pair, name, kind, path, n in jobs:
            measured = run_worker(kind, path, count, first_core, n, max(2, n // 10))
            rows.append({"threads": count, "pair": pair, "kind": name, **measured})
            progress(f"threads {count} pair {pair} {name:16} median {measured['median_ms']:9.2f} ms  "
                     f"p90 {measured['p90_ms']:9.2f} ms  RSS {measured['peak_rss_mb']:.0f} MB")
    return rows


def ratio_table(rows: list[dict]) -> str:
    """Markdown: per thread count and pair, each model's median ms and fastest-Keras / int8; then
    the median of those ratios and how many pairs reach TARGET_RATIO."""
    backends = sorted({r["kind"] for r in rows if r["kind"].startswith("keras-")})
    lines = [f"| threads | pair | int8 ms | {' | '.join(b + ' ms' for b in backends)} | Keras / int8 |",
             "|---:|---:|---:|" + "---:|" * len(backends) + "---:|"]
    ratios = []
    for count, pair in sorted({(r["threads"], r["pair"]) for r in rows if r["pair"] > 0}):
        ms = {r["kind"]: r["median_ms"] for r in rows if r["threads"] == count and r["pair"] == pair}
        ratios.append(min(ms[b] for b in backends if b in ms) / ms["int8"])
        cells = " | ".join(f"{ms[b]:.1f}" if b in ms else "-" for b in backends)
        lines.append(f"| {count} | {pair} | {ms['int8']:.1f} | {cells} | {ratios[-1]:.1f}x |")
    reached = sum(r >= TARGET_RATIO for r in ratios)
    lines.append(f"\nmedian Keras / int8 over {len(ratios)} pairs: {np.median(ratios):.1f}x; "
                 f"{reached} of {len(ratios)} reach {TARGET_RATIO:g}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command")
    make = commands.add_parser("prepare", help="write the config and .tflite files (needs TensorFlow)")
    make.add_argument("--out", required=True)
    make.add_argument("--preset", default="seed")
    timing = commands.add_parser("time", help="paired timings of a prepared folder")
    timing.add_argument("folder")
    timing.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    timing.add_argument("--backends", nargs="+", default=["tensorflow"], help="Keras backends: tensorflow jax torch")
    timing.add_argument("--pairs", type=int, default=2)
    timing.add_argument("--runs", type=int, default=30, help="timed invocations of each .tflite")
    timing.add_argument("--keras-runs", type=int, default=10)
    timing.add_argument("--first-core", type=int, default=0, help="pin to cores from this one on")
    timing.add_argument("--json", help="also write the rows and the machine here")
    args = parser.parse_args(argv)

    if args.worker:
        kind, path, threads, first_core, runs, warmup = args.worker
        os.sched_setaffinity(0, range(int(first_core), int(first_core) + int(threads)))
        work = work_tflite if kind == "tflite" else work_keras
        print(json.dumps(work(path, int(threads), int(runs), int(warmup))))
        return 0
    if args.command == "prepare":
        print(f"wrote {prepare(Path(args.out), args.preset)}")
        return 0
    if args.command != "time":
        parser.error("choose a command: prepare or time")
    try:
        rows = time_pairs(Path(args.folder), args.threads, args.backends, args.pairs, args.runs, args.keras_runs,
                          args.first_core)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"\n{machine()}\n\n{ratio_table(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
