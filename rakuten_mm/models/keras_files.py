"""Saving Keras models byte-for-byte reproducibly, so that DVC hashes only change with content."""

import json
import re
import tempfile
from pathlib import Path

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


def save_keras_model(model: keras.Model, path: str | Path) -> None:
    """Save a .keras archive with fixed member timestamps and no save date."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / path.name
        model.save(raw)
        rewrite_zip(raw, path, stable_keras_member)
