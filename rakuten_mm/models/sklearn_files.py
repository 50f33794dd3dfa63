"""scikit-learn models saved with skops: loading never executes code from the file."""

import re
import tempfile
import zipfile
from pathlib import Path

import skops.io as sio

from rakuten_mm.models.zip_files import write_fixed_zip

# Everything a baseline file may contain beyond what skops trusts by default. Loading a file that
# holds any other type fails instead of instantiating it (a bare pickle would run anything).
TRUSTED_TYPES = [
    "rakuten_mm.models.baseline.TemperatureCalibratedSVC",
]


# skops names objects and array files after id(): memory addresses, new at every run.
_OBJECT_ID = re.compile(r'("__id__": |"file": ")(\d+)')


class UntrustedModelFileError(ValueError):
    """A model file holds types outside TRUSTED_TYPES."""


def renumber_object_ids(source: str | Path, target: str | Path) -> None:
    """Copy a .skops zip with its object ids replaced by 1, 2, … in order of first appearance."""
    with zipfile.ZipFile(source) as original:
        schema = original.read("schema.json").decode()
        numbers: dict[str, str] = {}
        for match in _OBJECT_ID.finditer(schema):
            numbers.setdefault(match.group(2), str(len(numbers) + 1))
        renamed = {f"{old}.npy": f"{new}.npy" for old, new in numbers.items()}
        members = {renamed.get(name, name): original.read(name) for name in original.namelist()}
    members["schema.json"] = _OBJECT_ID.sub(lambda m: m.group(1) + numbers[m.group(2)], schema).encode()
    write_fixed_zip(target, sorted(members.items()))


def save_sklearn_model(model, path: str | Path) -> None:
    """Save a fitted estimator as a .skops file whose bytes depend on the model only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / path.name
        sio.dump(model, raw)
        renumber_object_ids(raw, path)


def load_sklearn_model(path: str | Path):
    """Load a .skops file, refusing any type that is neither skops' default nor in TRUSTED_TYPES."""
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if untrusted:
        raise UntrustedModelFileError(f"{path}: refusing to load untrusted types {untrusted}")
    return sio.load(path, trusted=TRUSTED_TYPES)
