"""Pretrained text encoders through KerasHub (train_text.model=encoder): raw strings → pooled embedding.

A KerasHub preset (a built-in name such as `distil_bert_base_multi`, downloaded once, or a local
preset folder) gives a preprocessor (tokenizer + packer) and a backbone. `TextEncoder` holds both,
so the saved text model still takes raw strings and the API needs no tokenizer of its own.
KerasHub is imported only when a preset is loaded or an encoder model deserialised: the API
serves the other text models without it.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from rakuten_mm.models.text import text_tensor
from rakuten_mm.params import ENCODER_MODEL


class PresetUnavailableError(RuntimeError):
    """A KerasHub preset could not be loaded (offline, unknown name, incomplete folder)."""


def import_keras_hub():
    """KerasHub, imported on first use; it also registers its layers for deserialisation."""
    import keras_hub  # noqa: PLC0415 (optional dependency: requirements-encoder.txt)

    return keras_hub


def sequence_output(outputs):
    """The per-token vectors of a backbone's outputs (BERT-like backbones return a dict)."""
    return outputs["sequence_output"] if isinstance(outputs, dict) else outputs


@keras.saving.register_keras_serializable(package="rakuten_mm")
class TextEncoder(layers.Layer):
    """A KerasHub preprocessor and backbone as one layer: strings → mean of the non-padding token vectors."""

    def __init__(self, preprocessor, backbone, **kwargs):
        super().__init__(**kwargs)
        self.preprocessor = preprocessor
        self.backbone = backbone
        self.width = sequence_output(backbone.output).shape[-1]
        # Both parts arrive built (a KerasHub backbone is a functional model; the preprocessor has no weights).
        self.built = True

    def call(self, texts, training=None):
        """Tokenise, pack, encode, then average the token vectors where the padding mask is on."""
        inputs = self.preprocessor(texts)
        tokens = sequence_output(self.backbone(inputs, training=training))
        # Mean pooling rather than the first token: frozen backbones were not trained to put the
        # sentence into [CLS] (DistilBERT and XLM-RoBERTa have no pooler), the mean carries it.
        mask = ops.expand_dims(ops.cast(inputs["padding_mask"], tokens.dtype), -1)
        return ops.sum(tokens * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_spec(self, texts):
        """(batch, width) floats, known without running the tokenizer.

        Loading a saved model calls each layer on symbolic inputs before the tokenizer's
        vocabulary (a file asset) is read back: the tokenizer cannot run then, this can.
        """
        return keras.KerasTensor((texts.shape[0], self.width), dtype=self.compute_dtype)

    def get_config(self) -> dict:
        """The preprocessor's and backbone's own configs (the vocabulary and weights are saved as state)."""
        return {**super().get_config(), "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
                "backbone": keras.saving.serialize_keras_object(self.backbone)}

    @classmethod
    def from_config(cls, config: dict) -> "TextEncoder":
        """Rebuild the preprocessor and backbone (KerasHub classes, registered when it is imported)."""
        import_keras_hub()
        config = dict(config)
        preprocessor = keras.saving.deserialize_keras_object(config.pop("preprocessor"))
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
        return cls(preprocessor, backbone, **config)


def load_preset(preset: str, sequence_length: int):
    """The preset's text-classifier preprocessor (packing to sequence_length tokens) and backbone."""
    keras_hub = import_keras_hub()
    try:
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(preset, sequence_length=sequence_length)
        backbone = keras_hub.models.Backbone.from_preset(preset)
    # Downloads fail with connection, HTTP, file or value errors depending on where they stop;
    # all of them mean the same to the user: this preset cannot be had here.
    except Exception as error:
        raise PresetUnavailableError(
            f"train_text.encoder.preset={preset!r}: cannot load this KerasHub preset "
            f"({type(error).__name__}: {str(error)[:300]}). A preset name is downloaded from Kaggle "
            "on first use and needs network access; offline, set train_text.encoder.preset to the "
            "path of a local preset folder instead (one made by KerasHub's save_to_preset or "
            "downloaded on another machine: see docs/encoders.md)."
        ) from error
    return preprocessor, backbone


def build_text_encoder(preset: str, sequence_length: int, trainable: bool) -> keras.Model:
    """Raw strings → pooled embedding of a preset's backbone, frozen or trainable."""
    preprocessor, backbone = load_preset(preset, sequence_length)
    encoder = TextEncoder(preprocessor, backbone, name="pretrained_encoder")
    encoder.trainable = trainable
    inputs = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(inputs, encoder(inputs), name="encoder_featurizer")


def build_encoder_head(width: int, params: dict, n_classes: int) -> keras.Model:
    """The classifier on pooled embeddings: dropout, optional hidden layer (hidden_units > 0), softmax."""
    inputs = keras.Input(shape=(width,), name="embedding")
    features = layers.Dropout(params["dropout"])(inputs)
    if params["hidden_units"]:
        features = layers.Dense(params["hidden_units"], activation="relu", name="hidden")(features)
        features = layers.Dropout(params["dropout"])(features)
    # float32 probabilities whatever the precision policy (train_text.mixed_precision).
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(features)
    return keras.Model(inputs, outputs, name=f"text_{ENCODER_MODEL}_head")


def write_embeddings(encoder: keras.Model, texts: list[str], batch_size: int, path) -> np.ndarray:
    """The encoder's pooled embeddings of all texts, written batch by batch into a memory-mapped .npy."""
    width = encoder.output.shape[-1]
    output = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(texts), width))
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        output[start:start + len(batch)] = np.asarray(encoder.predict_on_batch(text_tensor(batch)), dtype=np.float32)
    output.flush()
    return output


def string_batches(texts: list[str], labels: np.ndarray, batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
    """(raw text, label) batches for fine-tuning; reshuffled each epoch, reproducibly, when seeded."""
    data = tf.data.Dataset.from_tensor_slices((np.asarray(texts, dtype=object), labels.astype(np.int32)))
    if shuffle_seed is not None:
        data = data.shuffle(len(texts), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_text_model(path) -> keras.Model:
    """A saved text model, whichever kind: this module's import registers TextEncoder for Keras."""
    return keras.models.load_model(path)
