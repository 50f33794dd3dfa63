"""Fitting Keras classifiers: class weights, batched inputs from memory-mapped arrays, early stopping."""

import itertools

import keras
import numpy as np
import tensorflow as tf
from scipy import sparse

CLASS_WEIGHT_MODES = ("none", "balanced", "sqrt")


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> dict | None:
    """Per-class loss weights against the 13:1 imbalance: inverse frequency, or its square root."""
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(f"class_weights must be one of {CLASS_WEIGHT_MODES}, got {mode!r}")
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    weights = len(labels) / (n_classes * np.maximum(counts, 1.0))
    if mode == "sqrt":
        weights = np.sqrt(weights)
    return {i: float(w) for i, w in enumerate(weights)}


def take_rows(array, rows: np.ndarray) -> np.ndarray:
    """array[rows] as a dense array, reading sorted rows (sequential on a memory map, fast on CSR)."""
    order = np.argsort(rows, kind="stable")
    batch = array[rows[order]]
    batch = batch.toarray() if sparse.issparse(batch) else np.asarray(batch)
    restored = np.empty_like(batch)
    restored[order] = batch
    return restored


def array_batches(array, rows: np.ndarray, labels: np.ndarray | None,
                  batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
    """Batches of array[rows] read one batch at a time (memory-mapped .npy or CSR matrix).

    labels, when given, are aligned with rows (labels[i] belongs to rows[i]).
    """
    epochs = itertools.count()

    def generate():
        order = np.arange(len(rows))
        if shuffle_seed is not None:
            # A new but reproducible order each epoch.
            np.random.default_rng([shuffle_seed, next(epochs)]).shuffle(order)
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = take_rows(array, rows[chosen])
            yield (batch, labels[chosen].astype(np.int32)) if labels is not None else batch

    sample_shape = (None, *array.shape[1:])
    input_spec = tf.TensorSpec(sample_shape, tf.as_dtype(np.dtype(array.dtype)))
    signature = (input_spec, tf.TensorSpec((None,), tf.int32)) if labels is not None else input_spec
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(tf.data.AUTOTUNE)


def fit_classifier(model: keras.Model, x, y, validation_data, params: dict,
                   weights: dict | None, callbacks: list) -> keras.callbacks.History:
    """Compile with Adam and sparse cross-entropy, then fit with early stopping on val_loss.

    x is a tensor (with labels y) or a batched tf.data pipeline of (inputs, labels) (y None).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(params["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=params["patience"], restore_best_weights=True
    )
    return model.fit(
        x, y, batch_size=None if y is None else params["batch_size"],
        validation_data=validation_data, epochs=params["epochs"],
        class_weight=weights, callbacks=[stopper, *callbacks], verbose=2,
    )


def predict_probabilities(model: keras.Model, data, batch_size: int | None = None) -> np.ndarray:
    """Class probabilities as float32, for a tensor (give batch_size) or a batched tf.data pipeline."""
    return np.asarray(model.predict(data, batch_size=batch_size, verbose=0), dtype=np.float32)


def write_features(model: keras.Model, images, batch_size: int, path) -> np.ndarray:
    """model's outputs for every row of images, written batch by batch into a memory-mapped .npy."""
    rows = np.arange(len(images))
    width = model.output_shape[-1]
    output = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(images), width))
    start = 0
    # predict_on_batch over a generator: at most one batch of features in memory besides the map.
    for batch in array_batches(images, rows, None, batch_size, None).as_numpy_iterator():
        output[start:start + len(batch)] = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
        start += len(batch)
    output.flush()
    return output
