"""The challenge's raw layout: CSV tables with an unnamed index and images named by ids."""

from pathlib import Path

import pandas as pd

FEATURE_COLUMNS = ("designation", "description", "productid", "imageid")
LABEL_COLUMN = "prdtypecode"


class RawLayoutError(ValueError):
    """A raw file does not follow the challenge's layout."""


def image_filename(imageid: int, productid: int) -> str:
    """The challenge's image file name for one product."""
    return f"image_{int(imageid)}_product_{int(productid)}.jpg"


def read_table(path: str | Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a challenge CSV (unnamed index column) and check its required columns."""
    path = Path(path)
    if not path.is_file():
        raise RawLayoutError(f"{path}: file not found")
    table = pd.read_csv(path, index_col=0, dtype={"designation": str, "description": str})
    for column in required:
        if column not in table.columns:
            raise RawLayoutError(f"{path}: missing required column '{column}'")
    return table


def read_features(path: str | Path) -> pd.DataFrame:
    """Read X_train/X_test: designation, description, productid, imageid."""
    table = read_table(path, FEATURE_COLUMNS)
    for column in ("productid", "imageid"):
        if table.empty:
            # A test file with a header only (no unlabelled products) reads as untyped columns.
            table[column] = table[column].astype("int64")
        elif not pd.api.types.is_integer_dtype(table[column]):
            raise RawLayoutError(f"{path}: column '{column}' must hold integer ids")
    return table


def read_labelled(x_path: str | Path, y_path: str | Path) -> pd.DataFrame:
    """Read X_train and Y_train and join them on their shared index."""
    features = read_features(x_path)
    labels = read_table(y_path, (LABEL_COLUMN,))
    missing = features.index.difference(labels.index)
    if len(missing):
        raise RawLayoutError(f"{y_path}: no {LABEL_COLUMN} for {len(missing)} rows of {x_path}")
    return features.join(labels[[LABEL_COLUMN]], how="left")
