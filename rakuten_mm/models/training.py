"""Fitting Keras classifiers: class weights, batched inputs from memory-mapped arrays, early stopping on F1, epoch logs."""

import itertools
import math
import time

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from keras import ops
from scipy import sparse

from rakuten_mm.evaluation.metrics import weighted_f1

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


def flip_some_horizontally(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each image of a (batch, height, width, channels) array left-right with probability 1/2, in place."""
    flipped = rng.random(len(images)) < 0.5
    images[flipped] = images[flipped, :, ::-1]
    return images


def array_batches(array, rows: np.ndarray, labels: np.ndarray | None,
                  batch_size: int, shuffle_seed: int | None, flip: bool = False) -> tf.data.Dataset:
    """Batches of array[rows] read one batch at a time (memory-mapped .npy or CSR matrix).

    labels, when given, are aligned with rows (labels[i] belongs to rows[i]). flip (with a
    shuffle_seed) mirrors a random half of each batch of images, drawn from the epoch's generator.
    """
    if flip and shuffle_seed is None:
        raise ValueError("flip needs a shuffle_seed: the flips are drawn with the epoch's generator")
    epochs = itertools.count()

    def generate():
        order = np.arange(len(rows))
        if shuffle_seed is not None:
            # A new but reproducible order each epoch (and, after it, the epoch's flips).
            rng = np.random.default_rng([shuffle_seed, next(epochs)])
            rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = take_rows(array, rows[chosen])
            if flip:
                # On uint8 rows, once per batch: a Keras flip layer cost ~6% of every training step in float ops.
                batch = flip_some_horizontally(batch, rng)
            yield (batch, labels[chosen].astype(np.int32)) if labels is not None else batch

    sample_shape = (None, *array.shape[1:])
    input_spec = tf.TensorSpec(sample_shape, tf.as_dtype(np.dtype(array.dtype)))
    signature = (input_spec, tf.TensorSpec((None,), tf.int32)) if labels is not None else input_spec
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(tf.data.AUTOTUNE)


class SparseRows:
    """A CSR matrix held once as TensorFlow ragged rows, from which batches gather their rows."""

    # A Python generator of SparseTensors cost 17 ms a batch (row slicing, COO conversion, py_func)
    # against a 28 ms training step: now only a batch's row positions come from Python and
    # TensorFlow gathers the rows. Held once, so that every split's and fold's batches read
    # positions into it instead of copies (tf.data keeps each generator, and what it holds).
    def __init__(self, matrix: sparse.csr_matrix):
        matrix = sparse.csr_matrix(matrix, dtype=np.float32)
        if not matrix.has_sorted_indices:
            matrix = matrix.sorted_indices()
        splits = matrix.indptr.astype(np.int64)
        self.columns = tf.RaggedTensor.from_row_splits(matrix.indices.astype(np.int32), splits)
        self.values = tf.RaggedTensor.from_row_splits(matrix.data, splits)
        self.shape = matrix.shape

    def gather(self, positions: tf.Tensor) -> tf.SparseTensor:
        """The rows at the given positions, in that order, as one (len(positions), width) SparseTensor."""
        columns, values = tf.gather(self.columns, positions), tf.gather(self.values, positions)
        indices = tf.stack([columns.value_rowids(), tf.cast(columns.values, tf.int64)], axis=1)
        shape = tf.stack([tf.size(positions, out_type=tf.int64), tf.constant(self.shape[1], tf.int64)])
        rows = tf.SparseTensor(indices, values.values, shape)
        rows.set_shape((None, self.shape[1]))
        return rows


class SparseBatches:
    """One tf.data pipeline of SparseRows batches, pointed at other rows before each pass.

    A new pipeline traced its row gather again (~0.1 s): train_text's seven fits and their
    predictions each built one. Now each kind of pass keeps one pipeline and selects its rows.
    """

    def __init__(self, table: SparseRows, labelled: bool):
        spec = tf.TensorSpec((None,), tf.int64)
        signature = (spec, tf.TensorSpec((None,), tf.int32)) if labelled else spec
        data = tf.data.Dataset.from_generator(self._positions, output_signature=signature)
        data = data.map(lambda ids, y: (table.gather(ids), y)) if labelled else data.map(table.gather)
        self.data = data.prefetch(tf.data.AUTOTUNE)
        self.n_rows = table.shape[0]
        self.select(np.arange(0), np.arange(0, dtype=np.int32) if labelled else None, 1, None)

    def select(self, rows: np.ndarray | None, labels: np.ndarray | None, batch_size: int,
               shuffle_seed: int | None) -> tf.data.Dataset:
        """The pipeline, now batching these table rows (all when None), labels aligned; epochs restart at 0."""
        self.rows, self.labels = np.arange(self.n_rows) if rows is None else np.asarray(rows), labels
        self.batch_size, self.shuffle_seed = batch_size, shuffle_seed
        self.epochs = itertools.count()
        return self.data

    def _positions(self):
        """One pass: batches of row positions (and labels), reshuffled each epoch when a seed is set."""
        # Only row positions (and labels) cross from Python: the rows are gathered by TensorFlow.
        rows, labels, batch_size = self.rows, self.labels, self.batch_size
        order = np.arange(len(rows))
        if self.shuffle_seed is not None:
            np.random.default_rng([self.shuffle_seed, next(self.epochs)]).shuffle(order)
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = rows[chosen].astype(np.int64)
            yield (batch, labels[chosen].astype(np.int32)) if labels is not None else batch


def sparse_batches(matrix: "sparse.csr_matrix | SparseRows", labels: np.ndarray | None, batch_size: int,
                   shuffle_seed: int | None, rows: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches of CSR rows as tf.SparseTensor, never densified; labels (aligned with the rows) when given.

    rows: positions of the matrix rows to batch (all when None). With a shuffle_seed, each epoch
    reshuffles the rows in a new but reproducible order.
    """
    table = matrix if isinstance(matrix, SparseRows) else SparseRows(matrix)
    return SparseBatches(table, labels is not None).select(rows, labels, batch_size, shuffle_seed)


def training_batch_size(n_rows: int, params: dict) -> int:
    """params.batch_size, shrunk so that an epoch has at least params.min_steps_per_epoch steps."""
    # On a few hundred rows a batch of 256 is one or two optimizer steps per epoch: the budget
    # would run out long before the model fits, whatever the number of epochs.
    return max(1, min(params["batch_size"], n_rows // max(params.get("min_steps_per_epoch", 1), 1)))


LEARNING_RATE_SCHEDULES = ("constant", "cosine")


def learning_rate_schedule(params: dict) -> list[keras.callbacks.Callback]:
    """The callbacks of params.learning_rate_schedule: none (constant), or a per-epoch cosine decay over params.epochs."""
    schedule = params["learning_rate_schedule"]
    if schedule not in LEARNING_RATE_SCHEDULES:
        raise ValueError(f"learning_rate_schedule must be one of {LEARNING_RATE_SCHEDULES}, got {schedule!r}")
    if schedule == "constant":
        return []
    # The last epochs take small steps: the weights settle instead of jumping between epochs.
    return [keras.callbacks.LearningRateScheduler(
        lambda epoch, _: params["learning_rate"] * 0.5 * (1 + math.cos(math.pi * epoch / params["epochs"])))]


class EpochLogger(keras.callbacks.Callback):
    """Log every Keras epoch metric and the training throughput to dvclive, one step per epoch."""

    def __init__(self, live: Live, train_samples: int):
        super().__init__()
        self.live = live
        self.train_samples = train_samples
        self.epoch_started = 0.0
        self.rates: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Start the epoch's clock."""
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """One dvclive step per epoch: loss, accuracy, their validation twins, samples/s."""
        # The clock includes the validation pass: samples/s is what a whole epoch costs.
        rate = self.train_samples / max(time.perf_counter() - self.epoch_started, 1e-9)
        self.rates.append(rate)
        for name, value in (logs or {}).items():
            self.live.log_metric(f"train/{name}", float(value))
        self.live.log_metric("train/samples_per_second", rate)
        self.live.next_step()

    def on_train_end(self, logs: dict | None = None) -> None:
        """The median epoch throughput, as a summary metric comparable across runs."""
        if self.rates:
            self.live.log_metric("throughput/train_samples_per_second", float(np.median(self.rates)), plot=False)


class ValidationF1(keras.callbacks.Callback):
    """Adds val_loss, val_accuracy and val_f1_weighted (the challenge metric) to each epoch's logs.

    One prediction pass over the validation rows gives all three: Keras' own validation_data
    would run a second pass every epoch.
    """

    def __init__(self, batches: tf.data.Dataset, labels: np.ndarray):
        super().__init__()
        self.batches = batches
        self.labels = labels

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Predict the validation rows; callbacks after this one (early stopping) read the scores."""
        probabilities = predict_probabilities(self.model, self.batches)
        predicted = probabilities.argmax(1)
        if logs is not None:
            # Keras' sparse categorical cross-entropy clips probabilities to [1e-7, 1 - 1e-7].
            true_class = np.clip(probabilities[np.arange(len(self.labels)), self.labels], 1e-7, 1 - 1e-7)
            logs["val_loss"] = float(-np.log(true_class).mean())
            logs["val_accuracy"] = float((predicted == self.labels).mean())
            logs["val_f1_weighted"] = weighted_f1(self.labels, predicted)


@keras.saving.register_keras_serializable(package="rakuten_mm")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam, its update computed by TensorFlow's fused ApplyAdam kernel: one pass over each variable.

    Keras' Adam runs about eight element-wise ops per variable, each a full pass over memory:
    on the tf-idf head's 4.6M-weight kernel that was half of every training step. Same formula
    (m, v, bias-corrected step, epsilon outside the square root), same hyper-parameters.
    """

    def update_step(self, gradient, variable, learning_rate):
        """m, v and the variable updated in place by one ResourceApplyAdam."""
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=ops.power(beta_1, step), beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=ops.cast(self.epsilon, dtype), grad=ops.cast(gradient, dtype))


def compile_classifier(model: keras.Model, params: dict) -> None:
    """Adam (fused) at params.learning_rate on the sparse categorical cross-entropy."""
    model.compile(
        optimizer=FusedAdam(params["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def fit_epochs(model: keras.Model, train: tf.data.Dataset, params: dict, epochs: int,
               weights: dict | None, callbacks: list = ()) -> keras.Model:
    """Compile and fit for a fixed number of epochs (chosen beforehand), with no validation rows."""
    compile_classifier(model, params)
    model.fit(train, epochs=epochs, class_weight=weights, callbacks=list(callbacks), verbose=0)
    return model


def best_epoch(history: keras.callbacks.History) -> int:
    """The number of epochs that reached the best validation weighted F1 (the weights early stopping kept)."""
    scores = history.history["val_f1_weighted"]
    return int(np.argmax(scores)) + 1


def fit_classifier(model: keras.Model, train: tf.data.Dataset, validation: tf.data.Dataset,
                   validation_labels: np.ndarray, params: dict, weights: dict | None,
                   callbacks: list) -> keras.callbacks.History:
    """Compile with Adam and sparse cross-entropy (unless compiled), fit, keep the weights of the best validation F1.

    train and validation are batched tf.data pipelines of (inputs, labels).
    """
    if not model.compiled:  # a RestartableHead comes compiled: recompiling would trace its train step again
        compile_classifier(model, params)
    # The loss keeps falling while F1 already dropped (over-confident errors): stop on the metric.
    stopper = keras.callbacks.EarlyStopping(monitor="val_f1_weighted", mode="max",
                                            patience=params["patience"], restore_best_weights=True)
    return model.fit(
        train, epochs=params["epochs"], class_weight=weights,
        callbacks=[ValidationF1(validation.map(lambda inputs, _: inputs), validation_labels), stopper,
                   *callbacks],
        verbose=2,
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
