"""scikit-learn models saved with skops: loading never executes code from the file."""

import tempfile
from pathlib import Path

import skops.io as sio

from rakuten_mm.models.zip_files import rewrite_zip

# Everything a baseline file may contain beyond what skops trusts by default. Loading a file that
# holds any other type fails instead of instantiating it (a bare pickle would run anything).
TRUSTED_TYPES = [
    "rakuten_mm.models.baseline.TemperatureCalibratedSVC",
]


class UntrustedModelFileError(ValueError):
    """A model file holds types outside TRUSTED_TYPES."""


def save_sklearn_model(model, path: str | Path) -> None:
    """Save a fitted estimator as a .skops file with fixed member timestamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / path.name
        sio.dump(model, raw)
        rewrite_zip(raw, path)


def load_sklearn_model(path: str | Path):
    """Load a .skops file, refusing any type that is neither skops' default nor in TRUSTED_TYPES."""
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if untrusted:
        raise UntrustedModelFileError(f"{path}: refusing to load untrusted types {untrusted}")
    return sio.load(path, trusted=TRUSTED_TYPES)
