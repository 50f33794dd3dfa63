"""Keras text classifiers that read the cleaned, lower-cased product text as raw strings."""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

TEXT_MODELS = ("tfidf", "cnn", "bilstm")


def make_vectorizer(kind: str, params: dict) -> layers.TextVectorization:
    """TextVectorization in tf-idf mode for the tfidf model, integer sequences otherwise."""
    # Lower-casing is done in Python before (see features.text); here only punctuation goes.
    if kind == "tfidf":
        return layers.TextVectorization(
            max_tokens=params["max_tokens"], standardize="strip_punctuation",
            ngrams=params["ngrams"], output_mode="tf_idf", name="vectorizer",
        )
    return layers.TextVectorization(
        max_tokens=params["max_tokens"], standardize="strip_punctuation",
        output_mode="int", output_sequence_length=params["sequence_length"], name="vectorizer",
    )


def sequence_encoder(tokens, params: dict, kind: str):
    """Embedding followed by parallel convolutions (cnn) or a bidirectional LSTM (bilstm)."""
    embedded = layers.Embedding(
        params["max_tokens"], params["embedding_dim"], mask_zero=kind == "bilstm", name="embedding"
    )(tokens)
    if kind == "bilstm":
        return layers.Bidirectional(layers.LSTM(params["lstm_units"]), name="bilstm")(embedded)
    pooled = [
        layers.GlobalMaxPooling1D()(layers.Conv1D(params["filters"], size, activation="relu")(embedded))
        for size in params["kernel_sizes"]
    ]
    return layers.Concatenate(name="conv_features")(pooled)


def build_text_model(kind: str, train_texts: list[str], params: dict, n_classes: int) -> keras.Model:
    """Build and adapt a text classifier of the given kind on the training texts."""
    if kind not in TEXT_MODELS:
        raise ValueError(f"train_text.model must be one of {TEXT_MODELS}, got {kind!r}")
    vectorizer = make_vectorizer(kind, params)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(np.asarray(train_texts, dtype=object)).batch(2048))
    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    features = vectorizer(inputs)
    if kind == "tfidf":
        features = layers.Dropout(params["dropout"])(features)
    else:
        features = sequence_encoder(features, params, kind)
    hidden = layers.Dense(params["hidden_units"], activation="relu", name="hidden")(features)
    hidden = layers.Dropout(params["dropout"])(hidden)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(hidden)
    return keras.Model(inputs, outputs, name=f"text_{kind}")


def text_tensor(texts: list[str]) -> tf.Tensor:
    """Shape a list of strings as the (batch, 1) string tensor the text models take."""
    return tf.constant(np.asarray(texts, dtype=object).reshape(-1, 1))
