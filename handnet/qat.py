"""Quantization-aware fine-tuning for `python -m handnet.export --mode qat`.

tensorflow-model-optimization only quantizes tf_keras (Keras 2) models, so the route is: rebuild
the same preset with tf_keras (model.py's builders take the Keras package as an argument, so the
layer names match), copy the trained weights across by name, wrap every layer except the pixel
scaling with fake-quantization, start each fake-quantizer at its tensor's measured range, fine-tune on the run's training data, and hand the result
to the TFLite converter, which then emits a full-integer model.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from handnet.config import TRAINING_HEADS, Config

QAT_LR_FACTOR = 0.1  # fine-tuning runs at a tenth of the training learning rate


def tf_keras_twin(model, config: Config):
    """The same network in tf_keras at config.input_size, holding model's weights."""
    import tf_keras  # noqa: PLC0415

    from handnet.model import build_model  # noqa: PLC0415

    options = {"unit_pixels": True} if config.preset == "fast" else {}
    twin = build_model(dataclasses.replace(config, backbone_weights="none"), k=tf_keras, **options)
    source = {layer.name: layer for layer in model.layers}
    for layer in twin.layers:
        if layer.weights:
            weights = [np.asarray(w) for w in source[layer.name].get_weights()]
            if options and layer.name == "stem_conv":
                weights[0] = weights[0] * 255.0  # the twin's pixels arrive divided by 255
            layer.set_weights(weights)
    return twin


def quantize_for_training(twin):
    """Fake-quantize every layer but the pixel scaling (tfmot has no scheme for it; the
    converter quantizes it with the rest)."""
    import tensorflow_model_optimization as tfmot  # noqa: PLC0415
    import tf_keras  # noqa: PLC0415

    annotate = tfmot.quantization.keras.quantize_annotate_layer

    unquantized = (tf_keras.layers.Normalization, tf_keras.layers.Rescaling, tf_keras.layers.InputLayer)

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        return copy if isinstance(layer, unquantized) else annotate(copy)

    annotated = tf_keras.models.clone_model(twin, clone_function=clone)
    annotated.set_weights(twin.get_weights())
    return tfmot.quantization.keras.quantize_apply(annotated)


def calibrate_ranges(quantized, twin, images) -> None:
    """Start every activation fake-quantizer at the range its tensor really has on `images`, as
    measured in the float twin. tfmot starts them all at [-6, 6] and widens them by a slow moving
    average, which clips raw 0-255 pixels and wide activations for thousands of steps."""
    # Input quantizers hold the tensor entering the quantized graph; wrapped layers hold their
    # output, read from the float layer of the same name ("quant_stem_relu" -> "stem_relu").
    inputs = [layer for layer in quantized.layers if type(layer).__name__ == "QuantizeLayer"]
    wrapped = [layer for layer in quantized.layers
               if layer.name.startswith("quant_") and any("output_min" in w.name for w in layer.weights)]
    values = (_probe(quantized, [layer.input for layer in inputs], images)
              + _probe(twin, [twin.get_layer(layer.name[len("quant_"):]).output for layer in wrapped], images))
    for layer, value in zip(inputs + wrapped, values):
        low, high = min(float(np.min(value)), 0.0), max(float(np.max(value)), 0.0)
        for weight in layer.weights:
            if "kernel" in weight.name:
                continue
            if weight.name.endswith("_min:0"):
                weight.assign(low)
            elif weight.name.endswith("_max:0"):
                weight.assign(high)


def _probe(model, tensors, images) -> list:
    """The values of some of model's tensors on images."""
    import tf_keras  # noqa: PLC0415

    if not tensors:
        return []
    values = tf_keras.Model(model.inputs, tensors)(images, training=False)
    return values if isinstance(values, list) else [values]


def quantization_aware_finetune(model, config: Config, epochs: int = 1, steps: int | None = None,
                                progress: bool = True):
    """Fine-tune a fake-quantized tf_keras copy of `model` on config.data; returns it, ready for
    handnet.export.convert. steps: batches per epoch (default: one pass over the training set)."""
    import tf_keras  # noqa: PLC0415

    from handnet.annotations import load_samples, train_val_split  # noqa: PLC0415
    from handnet.data import make_dataset  # noqa: PLC0415
    from handnet.losses import get_loss  # noqa: PLC0415

    if epochs < 1:
        raise ValueError(f"--qat-epochs must be at least 1, got {epochs}")
    # Whole inputs: the quantized network is built at its deployment size.
    no_heads = {field: 0.0 for field in TRAINING_HEADS.values()}  # the deployed network: no training heads
    tune = dataclasses.replace(config, crop_size=(), focus_crops=0.0, **no_heads)
    samples = load_samples(tune.data, tune.labels)
    train_samples, _ = train_val_split(samples, tune.val_fraction, tune.group_size, tune.seed)
    train_samples = train_samples or samples
    twin = tf_keras_twin(model, config)
    quantized = quantize_for_training(twin)
    dataset = make_dataset(train_samples, tune, training=True)
    calibrate_ranges(quantized, twin, next(iter(dataset))[0])
    quantized.compile(optimizer=tf_keras.optimizers.Adam(config.learning_rate * QAT_LR_FACTOR),
                      loss=get_loss(tune))
    steps = steps or max(1, len(train_samples) // tune.batch_size)
    quantized.fit(dataset, steps_per_epoch=steps, epochs=epochs,
                  verbose=(1 if sys.stdout.isatty() else 2) if progress else 0)
    return quantized

