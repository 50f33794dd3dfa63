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


def tfidf_vectorizer(name: str, **options) -> layers.TextVectorization:
    """A tf-idf TextVectorization; punctuation is stripped, lower-casing was done in Python before."""
    return layers.TextVectorization(standardize="strip_punctuation", output_mode="tf_idf", name=name, **options)


def ignore_unknown_tokens(vectorizer: layers.TextVectorization) -> None:
    """Give the out-of-vocabulary column of a tf-idf vectorizer an idf weight of 0."""
    # Keras counts every unknown n-gram into column 0 with an average idf: on long descriptions
    # that one column carries most of the vector's norm (over 90% for character n-grams on real
    # products) and drowns what the known n-grams say once the vector is normalised.
    store: dict = {}
    vectorizer.save_own_variables(store)
    idf = np.asarray(store["idf_weights"], dtype=np.float32).copy()
    idf[0] = 0.0
    vectorizer.set_vocabulary(vectorizer.get_vocabulary(), idf_weights=idf)


def adapt_vectorizers(kind: str, train_texts: list[str], params: dict) -> list[layers.TextVectorization]:
    """Vectorizers fitted on the training texts: word (and character) tf-idf for tfidf, sequences otherwise."""
    if kind not in TEXT_MODELS:
        raise ValueError(f"train_text.model must be one of {TEXT_MODELS}, got {kind!r}")
    if kind == "tfidf":
        vectorizers = [tfidf_vectorizer("words", max_tokens=params["max_tokens"], ngrams=params["ngrams"])]
        if params.get("char_ngrams"):
            # Character n-grams carry plurals, accents, model numbers and compounds that words miss.
            low, high = params["char_ngrams"]
            vectorizers.append(tfidf_vectorizer("chars", max_tokens=params["char_max_tokens"],
                                                split="character", ngrams=tuple(range(low, high + 1))))
    else:
        vectorizers = [layers.TextVectorization(
            max_tokens=params["max_tokens"], standardize="strip_punctuation", output_mode="int",
            output_sequence_length=params["sequence_length"], name="vectorizer")]
    batches = tf.data.Dataset.from_tensor_slices(np.asarray(train_texts, dtype=object)).batch(2048)
    for vectorizer in vectorizers:
        vectorizer.adapt(batches)
        if kind == "tfidf":
            ignore_unknown_tokens(vectorizer)
    return vectorizers


def build_featurizer(vectorizers: list[layers.TextVectorization]) -> keras.Model:
    """Raw strings → the head's input: L2-normalised tf-idf blocks side by side, or token ids."""
    inputs = keras.Input(shape=(), dtype="string", name="text")
    if vectorizers[0].get_config()["output_mode"] != "tf_idf":
        return keras.Model(inputs, vectorizers[0](inputs), name="featurizer")
    # Each block normalised apart, as scikit-learn's FeatureUnion of TfidfVectorizers does:
    # long descriptions then weigh no more than short titles.
    blocks = [layers.UnitNormalization(name=f"{v.name}_l2")(v(inputs)) for v in vectorizers]
    features = blocks[0] if len(blocks) == 1 else layers.Concatenate(name="tfidf_blocks")(blocks)
    return keras.Model(inputs, features, name="featurizer")


def vectorize(featurizer: keras.Model, texts: list[str], chunk: int = 1024):
    """Features of all texts: a CSR matrix for tf-idf (mostly zeros), an int array for sequences."""
    tfidf = featurizer.output.dtype != "int64"
    # Each dense tf-idf chunk becomes sparse at once: all of them dense would be n × width floats.
    to_compact = sparse.csr_matrix if tfidf else (lambda part: part.astype(np.int32))
    parts = [to_compact(np.asarray(featurizer(text_tensor(texts[start:start + chunk]))))
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


def build_text_head(kind: str, params: dict, featurizer: keras.Model, n_classes: int) -> keras.Model:
    """The trainable part: tf-idf vectors or token ids in, class probabilities out."""
    width = featurizer.output.shape[-1]
    if kind == "tfidf":
        inputs = keras.Input(shape=(width,), name="tfidf")
        features = layers.Dropout(params["dropout"])(inputs)
    else:
        inputs = keras.Input(shape=(width,), dtype="int32", name="tokens")
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


def build_text_model(kind: str, train_texts: list[str], params: dict, n_classes: int) -> keras.Model:
    """An end-to-end text classifier (untrained head) adapted on the training texts."""
    featurizer = build_featurizer(adapt_vectorizers(kind, train_texts, params))
    return assemble_text_model(featurizer, build_text_head(kind, params, featurizer, n_classes))


def text_tensor(texts) -> tf.Tensor:
    """A list of strings as the (batch,) string tensor the text models take."""
    return tf.constant(np.asarray(list(texts), dtype=object).reshape(-1))
