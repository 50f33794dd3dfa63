"""Reading the pipeline's parameters from params.yaml, and the choices in them that several stages test.

Nothing here imports TensorFlow: a stage that finds it has nothing to do exits in a second.
"""

from pathlib import Path

import yaml


def load_params(path: str | Path = "params.yaml") -> dict:
    """Return the whole params.yaml as a dict."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


ENCODER_MODEL = "encoder"


def uses_cached_embeddings(train_text: dict) -> bool:
    """True for a frozen encoder (train_text params): its embeddings come from the text_features stage."""
    return train_text["model"] == ENCODER_MODEL and not train_text["encoder"]["trainable"]


def uses_image_features(train_image: dict) -> bool:
    """True when the image model is a head on the image_features stage's frozen features (train_image params)."""
    return train_image["input"] == "features"
