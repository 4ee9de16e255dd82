"""Speed and memory of every preset and mode, side by side with MediaPipe's BlazePalm.

    python -m handnet.bench                         # both presets, threads 1 and 2
    python -m handnet.bench --presets fast --threads 1 --markdown docs/performance.md
    python -m handnet.bench --training-memory 1000 10000     # peak RSS of train.py vs dataset size

Each model is timed in its own fresh process (so peak memory is that model's alone): the
.tflite files through handnet.runtime's interpreter, the Keras model through a tf.function.
Per frame it reports the median and p90 over --runs invocations after --warmup ones, the
end-to-end detect() time of the runtime (letterbox + model + peaks, on a 640x480 frame), and the
process' peak resident memory. BlazePalm (`../shared/anchors/palm_detection_*.tflite`, or
--reference) runs in the same loop with the same thread count; ratios are to palm_detection_full.
Untrained networks are timed unless --model gives a run's model.keras for a preset; speed does
not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ANCHORS = Path(__file__).resolve().parents[1].parent / "shared" / "anchors"
MODES = ("keras", "fp32", "fp16", "int8")
FRAME_HW = (480, 640)


# ---------------------------------------------------------------------------------------------
# Workers: one model, one process; print one JSON line.


def _stats(times: list[float]) -> dict:
    ms = np.asarray(times) * 1000
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM, unlike ru_maxrss, starts afresh at exec, so a
    worker does not inherit the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time(call, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def work_tflite(path: str, threads: int, runs: int, warmup: int) -> dict:
    """A handnet .tflite through handnet.runtime, or a foreign one (BlazePalm) through LiteRT."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    rng = np.random.default_rng(0)
    try:
        from handnet.runtime import HandDetector  # noqa: PLC0415

        detector = HandDetector(path, num_threads=threads)
    except ValueError:  # no handnet metadata: a reference model, raw invoke only
        interpreter = Interpreter(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        tensor = rng.random(detail["shape"]).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], tensor)
        result = _stats(_time(interpreter.invoke, runs, warmup))
        return {**result, "detect_ms": None, "peak_rss_mb": _peak_rss_mb()}
    interpreter = detector._interpreter
    frame = rng.integers(0, 255, (*FRAME_HW, 3), dtype=np.uint8)
    detector.heatmap(frame)  # fills the input tensor with a real letterboxed frame
    result = _stats(_time(interpreter.invoke, runs, warmup))
    detect = _stats(_time(lambda: detector.detect(frame), max(5, runs // 3), 2))
    return {**result, "detect_ms": detect["median_ms"], "peak_rss_mb": _peak_rss_mb()}


def work_keras(path: str, threads: int, runs: int, warmup: int) -> dict:
    import tensorflow as tf  # noqa: PLC0415

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from handnet.evaluate import load_model  # noqa: PLC0415
    from handnet.export import fixed_size_model  # noqa: PLC0415

    model, config = load_model(path)
    fixed = fixed_size_model(model, config)
    image = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, *config.input_size, 3)).astype(np.float32))
    call = tf.function(lambda x: fixed(x, training=False))
    result = _stats(_time(lambda: call(image).numpy(), runs, warmup))
    return {**result, "detect_ms": None, "peak_rss_mb": _peak_rss_mb()}


def run_worker(kind: str, path: str, threads: int, runs: int, warmup: int) -> dict:
    cmd = [sys.executable, "-m", "handnet.bench", "--worker", kind, path, "--threads", str(threads),
           "--runs", str(runs), "--warmup", str(warmup)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {path}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Models to time


def prepare_models(presets, models: dict[str, str], folder: Path) -> list[tuple[str, str, str, str]]:
    """[(preset, mode, kind, path)]: a model.keras per preset (given or untrained) and its
    fp32, fp16 and int8 exports. int8 is calibrated on random frames when untrained."""
    import keras  # noqa: PLC0415

    from handnet.config import Config  # noqa: PLC0415
    from handnet.evaluate import load_model  # noqa: PLC0415
    from handnet.export import export_model  # noqa: PLC0415
    from handnet.model import build_model  # noqa: PLC0415

    rows = []
    for preset in presets:
        if preset in models:
            keras_path = models[preset]
            model, config = load_model(keras_path)
        else:
            config = Config(preset=preset, data=["(untrained)"])
            model = build_model(config)
            run = folder / preset
            run.mkdir(parents=True, exist_ok=True)
            keras_path = str(run / "model.keras")
            model.save(keras_path)
            config.save(run / "config.json")
        rng = np.random.default_rng(0)
        frames = [rng.uniform(0, 255, (*config.input_size, 3)).astype(np.float32) for _ in range(8)]
        rows.append((preset, "keras", "keras", keras_path))
        for mode in MODES[1:]:
            path = export_model(model, config, mode, folder / f"{preset}-{mode}.tflite", frames=frames)
            rows.append((preset, mode, "tflite", str(path)))
        keras.backend.clear_session()
    return rows


def reference_models(reference: str | None) -> list[tuple[str, str, str, str]]:
    paths = [Path(reference)] if reference else [ANCHORS / "palm_detection_full.tflite", ANCHORS / "palm_detection_lite.tflite"]
    return [(p.stem, "BlazePalm fp32", "tflite", str(p)) for p in paths if p.is_file()]


# ---------------------------------------------------------------------------------------------


def benchmark(presets, threads, runs, warmup, models=None, reference=None, progress=True) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        rows = reference_models(reference) + prepare_models(presets, models or {}, Path(tmp))
        results = []
        for count in threads:
            base = None
            for name, mode, kind, path in rows:
                measured = run_worker(kind, path, count, runs if mode != "keras" else max(10, runs // 3), warmup)
                if name == "palm_detection_full" or (reference and base is None):
                    base = measured["median_ms"]
                results.append({"model": name, "mode": mode, "threads": count, **measured,
                                "ratio": measured["median_ms"] / base if base else None})
                if progress:
                    print(f"  {name:20} {mode:15} threads {count}: {measured['median_ms']:8.2f} ms", flush=True)
    return results


def format_table(results: list[dict]) -> str:
    lines = ["| model | mode | threads | median ms | p90 ms | detect() ms | peak RSS MB | x BlazePalm full |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        detect = "-" if r["detect_ms"] is None else f"{r['detect_ms']:.2f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['model']} | {r['mode']} | {r['threads']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{detect} | {r['peak_rss_mb']:.0f} | {ratio} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


TRAIN_MEMORY_FLAGS = ["--epochs", "1", "--val-fraction", "0.02", "--no-export", "--no-tune-threshold"]
PEAK_RSS = """
import resource, sys
sys.argv = ["train.py", *sys.argv[1:]]
import train
code = train.main(sys.argv[1:])
print("PEAK_RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
sys.exit(code)
"""


def training_memory(counts: list[int], workdir: Path) -> list[dict]:
    """Peak resident memory of one train.py epoch on synthetic sets of each size, each run in a
    fresh process. The pipeline streams images from disk, so the peak should not grow with the set."""
    from handnet.synthetic import generate_dataset  # noqa: PLC0415

    rows = []
    for count in counts:
        data = workdir / f"synthetic-{count}"
        if not (data / "hands.json").is_file():
            generate_dataset(data, count)
        shutil.rmtree(workdir / f"run-{count}", ignore_errors=True)
        started = time.time()
        out = subprocess.run([sys.executable, "-c", PEAK_RSS, "--data", str(data), "--out", str(workdir / f"run-{count}"),
                              *TRAIN_MEMORY_FLAGS], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
        peak = [float(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("PEAK_RSS_MB")]
        if out.returncode != 0 or not peak:
            raise RuntimeError(f"training on {count} images failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        rows.append({"images": count, "peak_rss_mb": round(peak[0]), "seconds": round(time.time() - started)})
        print(f"{count} images: peak RSS {peak[0]:.0f} MB ({time.time() - started:.0f} s)", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handnet.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["fast", "seed"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=50, help="timed invocations per model (Keras: a third)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--model", nargs="+", default=[], metavar="PRESET=PATH",
                        help="time a trained run's model.keras for that preset, e.g. fast=runs/x/model.keras")
    parser.add_argument("--reference", help="reference .tflite (default: ../shared/anchors/palm_detection_*.tflite)")
    parser.add_argument("--markdown", help="also write the table, with the machine, to this file")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--training-memory", nargs="+", type=int, metavar="IMAGES",
                        help="instead: peak RSS of one training epoch (train.py " + " ".join(TRAIN_MEMORY_FLAGS)
                             + ") on synthetic sets of these sizes")
    parser.add_argument("--workdir", default="runs/memory", help="--training-memory: where sets and runs go")
    args = parser.parse_args(argv)
    if args.training_memory:
        rows = training_memory(args.training_memory, Path(args.workdir))
        print(f"\n{machine()}\n\n| synthetic images | peak RSS MB | seconds |\n|---:|---:|---:|")
        print("\n".join(f"| {r['images']} | {r['peak_rss_mb']} | {r['seconds']} |" for r in rows))
        return 0

    if args.worker:
        kind, path = args.worker
        work = work_keras if kind == "keras" else work_tflite
        print(json.dumps(work(path, args.threads[0], args.runs, args.warmup)))
        return 0
    models = dict(item.split("=", 1) for item in args.model)
    if not reference_models(args.reference):
        print("note: no BlazePalm reference found (../shared/anchors); timing handnet only", file=sys.stderr)
    results = benchmark(args.presets, args.threads, args.runs, args.warmup, models, args.reference)
    table = format_table(results)
    print(f"\n{machine()}\n\n{table}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(f"Machine: {machine()}\n\nCommand: `python -m handnet.bench "
                                       f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
