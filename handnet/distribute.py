"""Training on several devices or hosts with tf.distribute, and the training arithmetic.

    python train.py --strategy mirrored                 # every GPU of this machine (else its CPU)
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        python train.py --strategy multiworker --out runs/big    # the same command on every host, its own index
    python train.py --precision float16                 # float16 compute, float32 weights (GPUs)
    python train.py --precision float32                 # what --precision auto (the default) picks
                                                        # on CPUs without native bfloat16 and on GPUs

The batch size stays the global one: tf.distribute splits every batch across the replicas, so a
run trains the same steps on one device or many. Under multiworker every worker reads the whole
dataset and takes its share of each batch; only the chief (worker 0) writes the run folder.
"""

from __future__ import annotations

import json
import os
import re
import time

import keras
import numpy as np
import tensorflow as tf

from handnet.config import STRATEGIES

# Keras' global policies: float32 weights, the named type for the arithmetic.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # All GPUs; without any, every logical CPU device (one, unless the process split its CPU).
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multiworker needs TF_CONFIG describing the cluster and this worker "
                             "(docs/guide.md: Scaling out)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy '{name}' (choose from {', '.join(STRATEGIES)})")


def is_chief() -> bool:
    """Whether this process writes the run folder: always, except on the non-chief workers of a
    multiworker cluster (TF_CONFIG: the `chief` task if the cluster has one, else worker 0)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if task.get("type") == "chief":
        return True
    return "chief" not in config.get("cluster", {}) and int(task.get("index", 0)) == 0


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Workers split batches element-wise: the pipeline is generated, not read from files."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def fit_multiworker(model: keras.Model, loss_fn, strategy, training: tf.data.Dataset, validation, steps: int,
                    epochs: int, initial_epoch: int, callbacks: list, chief: bool) -> None:
    """model.fit for MultiWorkerMirroredStrategy, which Keras 3's own fit() cannot drive
    (keras-team/keras#20585: it reduces scalar logs and a sample batch across workers and fails).

    Each step runs on every replica and the optimizer sums the gradients across workers, so the
    loss is divided by the number of replicas. Validation runs on the chief alone, outside the
    strategy, so workers never wait on each other for batches only some of them have. The usual
    callbacks (CSV log, curves, checkpoints) get the same per-epoch logs as under fit().
    """
    replicas = strategy.num_replicas_in_sync
    optimizer = model.optimizer
    with strategy.scope():  # its variables must exist before the first distributed step
        optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(batch):
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
                scaled = optimizer.scale_loss(loss / replicas)  # loss scaling under mixed precision
            optimizer.apply(tape.gradient(scaled, model.trainable_variables), model.trainable_variables)
            return loss

        return strategy.reduce("MEAN", strategy.run(step, args=batch), axis=None)

    batches = iter(strategy.experimental_distribute_dataset(training))
    hooks = keras.callbacks.CallbackList(callbacks if chief else [], model=model)
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        started = time.time()
        logs = {"loss": float(np.mean([float(train_step(next(batches))) for _ in range(steps)]))}
        if validation is not None and chief:
            logs["val_loss"] = float(np.mean([float(loss_fn(y, model(x, training=False))) for x, y in validation]))
        print(f"Epoch {epoch + 1}/{epochs} - {time.time() - started:.0f}s - "
              + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
        hooks.on_epoch_end(epoch, logs)
    hooks.on_train_end()


def cpu_has_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX), read from Linux's
    /proc/cpuinfo (or the given text); False where that cannot be read. Without it, bfloat16 is
    converted in software, and nothing says it would be faster than float32 (unmeasured here)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def resolve_precision(precision: str) -> str:
    """Config.precision (validated there) -> float32 | bfloat16 | float16. `auto` is bfloat16 when
    training runs on a CPU with native bfloat16 (1.3x faster steps on the project's machine,
    docs/default-run.md), and float32 otherwise, GPUs included (pass float16 for those)."""
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU"):
        return "float32"
    return "bfloat16" if cpu_has_bfloat16() else "float32"


def set_precision(precision: str) -> None:
    """Set Keras' global policy for float32 | bfloat16 | float16 (resolve_precision's answers)."""
    keras.mixed_precision.set_global_policy(POLICIES[precision])
