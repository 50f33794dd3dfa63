"""Keras text classifiers that read the cleaned, lower-cased product text as raw strings.

Training vectorises the texts once and fits a head on the vectors; the saved model is the
vectorizer and the head assembled, so serving takes raw strings through the same layer.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from scipy import sparse

TEXT_MODELS = ("tfidf", "cnn", "bilstm")


def adapt_vectorizer(kind: str, train_texts: list[str], params: dict) -> layers.TextVectorization:
    """TextVectorization fitted on the training texts: tf-idf n-grams for tfidf, sequences otherwise."""
    if kind not in TEXT_MODELS:
        raise ValueError(f"train_text.model must be one of {TEXT_MODELS}, got {kind!r}")
    # Lower-casing is done in Python before (see features.text); here only punctuation goes.
    options = dict(max_tokens=params["max_tokens"], standardize="strip_punctuation", name="vectorizer")
    if kind == "tfidf":
        vectorizer = layers.TextVectorization(ngrams=params["ngrams"], output_mode="tf_idf", **options)
    else:
        vectorizer = layers.TextVectorization(
            output_mode="int", output_sequence_length=params["sequence_length"], **options)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(np.asarray(train_texts, dtype=object)).batch(2048))
    return vectorizer


def vectorize(vectorizer: layers.TextVectorization, texts: list[str], chunk: int = 1024):
    """Vectors of all texts: a CSR matrix for tf-idf (mostly zeros), an int array for sequences."""
    tfidf = vectorizer.get_config()["output_mode"] == "tf_idf"
    # Each dense tf-idf chunk becomes sparse at once: all of them dense would be n × max_tokens floats.
    to_compact = sparse.csr_matrix if tfidf else (lambda part: part.astype(np.int32))
    parts = [to_compact(np.asarray(vectorizer(text_tensor(texts[start:start + chunk]))))
             for start in range(0, len(texts), chunk)]
    return sparse.vstack(parts, format="csr", dtype=np.float32) if tfidf else np.concatenate(parts)


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


def build_text_head(kind: str, params: dict, vectorizer: layers.TextVectorization, n_classes: int) -> keras.Model:
    """The trainable part: tf-idf vectors or token ids in, class probabilities out."""
    vocabulary_size = vectorizer.vocabulary_size()
    if kind == "tfidf":
        inputs = keras.Input(shape=(vocabulary_size,), name="tfidf")
        features = layers.Dropout(params["dropout"])(inputs)
    else:
        inputs = keras.Input(shape=(params["sequence_length"],), dtype="int32", name="tokens")
        features = sequence_encoder(inputs, params, kind, vocabulary_size)
    hidden = layers.Dense(params["hidden_units"], activation="relu", name="hidden")(features)
    hidden = layers.Dropout(params["dropout"])(hidden)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(hidden)
    return keras.Model(inputs, outputs, name=f"text_{kind}_head")


def assemble_text_model(vectorizer: layers.TextVectorization, head: keras.Model) -> keras.Model:
    """Raw strings → vectorizer → head: the model that is saved and served."""
    inputs = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(inputs, head(vectorizer(inputs)), name=head.name.removesuffix("_head"))


def build_text_model(kind: str, train_texts: list[str], params: dict, n_classes: int) -> keras.Model:
    """An end-to-end text classifier (untrained head) adapted on the training texts."""
    vectorizer = adapt_vectorizer(kind, train_texts, params)
    return assemble_text_model(vectorizer, build_text_head(kind, params, vectorizer, n_classes))


def text_tensor(texts) -> tf.Tensor:
    """A list of strings as the (batch,) string tensor the text models take."""
    return tf.constant(np.asarray(list(texts), dtype=object).reshape(-1))
