"""Keras text classifiers: a head on the tfidf stage's sparse rows, or sequence models on raw strings.

tfidf reads the shared featurizer's rows (the baseline reads the same ones), so its saved model is
the head alone. cnn and bilstm vectorise the texts once and fit a head on the token ids; their
saved model is vectorizer and head assembled, so it takes raw strings.
"""

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tensorflow.python.ops.linalg.sparse import sparse_csr_matrix_ops

TEXT_MODELS = ("tfidf", "cnn", "bilstm")
SEQUENCE_MODELS = ("cnn", "bilstm")


def adapt_vectorizer(train_texts: list[str], params: dict) -> layers.TextVectorization:
    """Token-id vectorizer (cnn, bilstm) fitted on the training texts."""
    vectorizer = layers.TextVectorization(
        max_tokens=params["max_tokens"], standardize="strip_punctuation", output_mode="int",
        output_sequence_length=params["sequence_length"], name="vectorizer")
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(np.asarray(train_texts, dtype=object)).batch(2048))
    return vectorizer


def build_featurizer(vectorizer: layers.TextVectorization) -> keras.Model:
    """Raw strings → token ids, the sequence heads' input."""
    inputs = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(inputs, vectorizer(inputs), name="featurizer")


def vectorize(featurizer: keras.Model, texts: list[str], chunk: int = 4096) -> np.ndarray:
    """Token ids of all texts, as int32."""
    parts = [np.asarray(featurizer(text_tensor(texts[start:start + chunk])), dtype=np.int32)
             for start in range(0, len(texts), chunk)]
    return np.concatenate(parts)


@keras.saving.register_keras_serializable(package="rakuten_mm")
class SparseDropout(layers.Layer):
    """Dropout on the stored values of a sparse input: Keras' Dropout takes dense tensors only."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        """Zero a random share of the non-zero entries while training; the identity otherwise."""
        if not training or self.rate == 0:
            return inputs
        values = keras.random.dropout(inputs.values, self.rate, seed=self.seed_generator)
        return tf.SparseTensor(inputs.indices, values, inputs.dense_shape)

    def get_config(self) -> dict:
        """What a saved model needs to rebuild the layer."""
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def csr_matmul(inputs: tf.SparseTensor, kernel: tf.Variable) -> tf.Tensor:
    """inputs @ kernel through TensorFlow's CSR kernels, with the kernel's gradient only."""
    # Keras' sparse Dense goes through embedding_lookup_sparse, whose gradient materialises one
    # kernel row per non-zero (600 a product): 2.5x slower per step than the CSR kernels here.
    matrix = sparse_csr_matrix_ops.sparse_tensor_to_csr_sparse_matrix(
        inputs.indices, tf.stop_gradient(inputs.values), tf.shape(inputs, out_type=tf.int64))

    @tf.custom_gradient
    def product(weights):
        def gradient(upstream):
            # An explicit transpose, not adjoint_a=True: the adjoint kernel sums rows in a
            # thread-dependent order, so two runs would train different models.
            transposed = sparse_csr_matrix_ops.sparse_matrix_transpose(matrix, type=tf.float32)
            return sparse_csr_matrix_ops.sparse_matrix_mat_mul(transposed, upstream)
        return sparse_csr_matrix_ops.sparse_matrix_mat_mul(matrix, weights), gradient

    return product(kernel)


@keras.saving.register_keras_serializable(package="rakuten_mm")
class SparseDense(layers.Dense):
    """A Dense layer for tf.SparseTensor rows (the tf-idf features), never densifying them."""

    def call(self, inputs, training=None):
        """activation(inputs @ kernel + bias)."""
        outputs = tf.reshape(csr_matmul(inputs, self.kernel), [-1, self.units])
        return self.activation(outputs + self.bias)


def build_tfidf_head(width: int, params: dict, n_classes: int) -> keras.Model:
    """Sparse tf-idf rows (the tfidf stage's featurizer) in, class probabilities out."""
    inputs = keras.Input(shape=(width,), sparse=True, name="tfidf")
    features = SparseDropout(params["dropout"], seed=params["seed"], name="input_dropout")(inputs)
    hidden = SparseDense(params["hidden_units"], activation="relu", name="hidden")(features)
    hidden = layers.Dropout(params["dropout"])(hidden)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(hidden)
    return keras.Model(inputs, outputs, name="text_tfidf")


def sequence_encoder(tokens, params: dict, kind: str, vocabulary_size: int):
    """Embedding followed by parallel convolutions (cnn) or a bidirectional LSTM (bilstm)."""
    embedded = layers.Embedding(vocabulary_size, params["embedding_dim"], mask_zero=kind == "bilstm",
                                name="embedding")(tokens)
    if kind == "bilstm":
        return layers.Bidirectional(layers.LSTM(params["lstm_units"]), name="bilstm")(embedded)
    pooled = [
        layers.GlobalMaxPooling1D()(layers.Conv1D(params["filters"], size, activation="relu")(embedded))
        for size in params["kernel_sizes"]
    ]
    return layers.Concatenate(name="conv_features")(pooled)


def build_sequence_head(kind: str, params: dict, featurizer: keras.Model, n_classes: int) -> keras.Model:
    """The trainable part of cnn and bilstm: token ids in, class probabilities out."""
    inputs = keras.Input(shape=(featurizer.output.shape[-1],), dtype="int32", name="tokens")
    vocabulary_size = featurizer.get_layer("vectorizer").vocabulary_size()
    features = sequence_encoder(inputs, params, kind, vocabulary_size)
    hidden = layers.Dense(params["hidden_units"], activation="relu", name="hidden")(features)
    hidden = layers.Dropout(params["dropout"])(hidden)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(hidden)
    return keras.Model(inputs, outputs, name=f"text_{kind}_head")


def assemble_text_model(featurizer: keras.Model, head: keras.Model) -> keras.Model:
    """Raw strings → featurizer → head: the model that is saved and served."""
    inputs = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(inputs, head(featurizer(inputs)), name=head.name.removesuffix("_head"))


def text_tensor(texts) -> tf.Tensor:
    """A list of strings as the (batch,) string tensor the text models take."""
    return tf.constant(np.asarray(list(texts), dtype=object).reshape(-1))


def dense_stack_forward(model: keras.Model) -> Callable:
    """The tfidf head's inference pass in SciPy/NumPy: CSR rows in, float32 probabilities out."""
    # One product is a 1 x 64,000 row with ~600 non-zeros: a sparse-times-dense product of
    # microseconds, where a TensorFlow call costs a few hundred of them in dispatch alone.
    steps = []
    for layer in model.layers:
        if isinstance(layer, layers.Dense):
            activation = keras.activations.serialize(layer.activation)
            name = activation if isinstance(activation, str) else activation.get("config", {}).get("name")
            if name not in STACK_ACTIVATIONS:
                raise ValueError(f"{model.name}: activation {name!r} of layer {layer.name} is not one of "
                                 f"{sorted(STACK_ACTIVATIONS)}")
            kernel, bias = (np.asarray(weight, dtype=np.float32) for weight in layer.get_weights())
            steps.append((kernel, bias, STACK_ACTIVATIONS[name]))
        elif not isinstance(layer, (layers.InputLayer, layers.Dropout, SparseDropout)):
            raise ValueError(f"{model.name}: layer {layer.name} ({type(layer).__name__}) is not a dense stack")

    def forward(rows) -> np.ndarray:
        outputs = rows
        for kernel, bias, activation in steps:
            outputs = activation(np.asarray(outputs @ kernel) + bias)
        return np.asarray(outputs, dtype=np.float32)

    return forward


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


STACK_ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "softmax": softmax_rows, "linear": lambda x: x}
