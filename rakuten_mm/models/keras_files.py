"""Saving Keras models byte-for-byte reproducibly, so that DVC hashes only change with content."""

import contextlib
import json
import re
import tempfile
from pathlib import Path
from typing import Iterator

import keras

from rakuten_mm.models.zip_files import rewrite_zip


_SHARED_OBJECT_ID = re.compile(rb'"shared_object_id": (\d+)')


def renumber_shared_objects(config: bytes) -> bytes:
    """Replace Keras's shared_object_id values (memory addresses) with 1, 2, … in order of appearance."""
    numbers: dict[bytes, int] = {}

    def stable(match: re.Match) -> bytes:
        number = numbers.setdefault(match.group(1), len(numbers) + 1)
        return b'"shared_object_id": ' + str(number).encode()

    return _SHARED_OBJECT_ID.sub(stable, config)


def stable_keras_member(name: str, data: bytes) -> bytes:
    """A .keras member without what changes at every save: the save date and memory addresses."""
    if name == "metadata.json":
        metadata = json.loads(data)
        metadata.pop("date_saved", None)
        return json.dumps(metadata, sort_keys=True).encode()
    if name == "config.json":
        return renumber_shared_objects(data)
    return data


@contextlib.contextmanager
def optimizers_detached(model: keras.Model) -> Iterator[keras.Model]:
    """The model and the models nested in it seen as uncompiled, without optimizers, until the block ends."""
    # Adam's two moments per weight were two thirds of the tf-idf head's file (56 MB against 19),
    # read by every API start and reload and pushed to the remote, though nothing trains on from them.
    # Rebuilding an uncompiled copy from its config would lose what is not a weight (the
    # vocabularies of TextVectorization and StringLookup), so the saved model itself goes without.
    # Nested models count: the served image model wraps the trained (compiled) head.
    models = [layer for layer in model._flatten_layers() if isinstance(layer, keras.Model)]
    states = [(getattr(each, "optimizer", None), getattr(each, "compiled", False)) for each in models]
    for each in models:
        each.optimizer, each.compiled = None, False
    try:
        yield model
    finally:
        for each, (optimizer, compiled) in zip(models, states):
            each.optimizer, each.compiled = optimizer, compiled


def save_keras_model(model: keras.Model, path: str | Path) -> None:
    """Save a .keras archive of the model for inference, with fixed member timestamps and no save date."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / path.name
        with optimizers_detached(model):
            model.save(raw)
        rewrite_zip(raw, path, stable_keras_member)
