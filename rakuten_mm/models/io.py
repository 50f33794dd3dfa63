"""Saving artefacts byte-for-byte reproducibly, so that DVC hashes only change with content."""

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import keras

from rakuten_mm.data.archive import FIXED_ZIP_TIME


_SHARED_OBJECT_ID = re.compile(rb'"shared_object_id": (\d+)')


def renumber_shared_objects(config: bytes) -> bytes:
    """Replace Keras's shared_object_id values (memory addresses) with 1, 2, … in order of appearance."""
    numbers: dict[bytes, int] = {}

    def stable(match: re.Match) -> bytes:
        number = numbers.setdefault(match.group(1), len(numbers) + 1)
        return b'"shared_object_id": ' + str(number).encode()

    return _SHARED_OBJECT_ID.sub(stable, config)


def save_keras_model(model: keras.Model, path: str | Path) -> None:
    """Save a .keras archive with fixed member timestamps and no save date."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / path.name
        model.save(raw)
        # Keras stamps the save time into metadata.json and the zip entries, and memory
        # addresses into config.json; none of them says anything about the model.
        with zipfile.ZipFile(raw) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                data = source.read(info)
                if info.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata, sort_keys=True).encode()
                elif info.filename == "config.json":
                    data = renumber_shared_objects(data)
                fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
                fixed.compress_type = zipfile.ZIP_DEFLATED
                target.writestr(fixed, data)


def write_json(data: dict, path: str | Path) -> None:
    """Write JSON with sorted keys and a trailing newline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> dict:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    keras.utils.set_random_seed(seed)
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
