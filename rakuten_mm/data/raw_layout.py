"""The challenge's raw layout: CSV tables with an unnamed index and images named by ids."""

import codecs
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from rakuten_mm.data.archive import write_stored_zip

FEATURE_COLUMNS = ("designation", "description", "productid", "imageid")
LABEL_COLUMN = "prdtypecode"
# The import stage's counts (rows, images packed, images matching no row), beside the raw files;
# make_dataset copies them into the data report.
IMPORT_REPORT = "import_report.json"
# Bytes decoded at a time when checking the encoding (the full X_train is ~60 MB).
ENCODING_CHECK_CHUNK = 1 << 20
# How many offending ids an error message lists.
SHOWN_IDS = 10


# The folder inside an images zip that holds the labelled photos, as in the challenge's archive.
LABELLED_IMAGE_FOLDER = "image_train"


class RawLayoutError(ValueError):
    """A raw file does not follow the challenge's layout."""


def image_filename(imageid: int, productid: int) -> str:
    """The challenge's image file name for one product."""
    return f"image_{int(imageid)}_product_{int(productid)}.jpg"


def check_utf8(path: Path) -> None:
    """Raise a one-line error naming the byte offset and line of the first byte that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(ENCODING_CHECK_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                # error.object starts with the bytes of an unfinished character held back from the previous
                # chunk (never a newline, which is one ASCII byte).
                bad = offset - (len(error.object) - len(chunk)) + error.start
                line = lines + error.object.count(b"\n", 0, error.start)
                raise RawLayoutError(
                    f"{path}: not UTF-8 at byte {bad} (line {line}: byte 0x{error.object[error.start]:02x}); "
                    "save the file as UTF-8"
                ) from None
            if not chunk:
                return
            offset += len(chunk)
            lines += chunk.count(b"\n")


def check_index(path: Path, table: pd.DataFrame, required: tuple[str, ...]) -> None:
    """The first column must be the challenge's unnamed row id, and ids must be unique."""
    if table.index.name in required or table.index.name in (*FEATURE_COLUMNS, LABEL_COLUMN):
        raise RawLayoutError(
            f"{path}: no unnamed index column (the first column is '{table.index.name}'); the challenge CSVs "
            "start with an unnamed row-id column, as written by pandas' to_csv()"
        )
    duplicated = table.index[table.index.duplicated()].unique()
    if len(duplicated):
        shown = sorted(duplicated.tolist())[:SHOWN_IDS]
        raise RawLayoutError(f"{path}: duplicate row ids {shown} ({len(duplicated)} ids repeated); ids must be unique")


def read_table(path: str | Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a challenge CSV (unnamed index column) and check its encoding, index and required columns."""
    path = Path(path)
    if not path.is_file():
        raise RawLayoutError(f"{path}: file not found")
    check_utf8(path)
    try:
        table = pd.read_csv(path, index_col=0, encoding="utf-8", dtype={"designation": str, "description": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RawLayoutError(f"{path}: not a readable CSV ({first_line})") from None
    check_index(path, table, required)
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


def write_labelled_folder(table: pd.DataFrame, photos: Iterable[tuple[int, int, bytes]], out_dir: str | Path,
                          files: dict) -> dict:
    """Write labelled products as a challenge-layout folder (X, Y and an images zip) that `import` reads.

    `table` holds FEATURE_COLUMNS and LABEL_COLUMN with the row ids as its index; `photos` yields
    (imageid, productid, JPEG bytes); `files` names the files as `import.files` does.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table[list(FEATURE_COLUMNS)].to_csv(out_dir / files["x_train"])
    table[[LABEL_COLUMN]].to_csv(out_dir / files["y_train"])
    members = ((f"{LABELLED_IMAGE_FOLDER}/{image_filename(imageid, productid)}", data)
               for imageid, productid, data in photos)
    images = write_stored_zip(out_dir / files["images_train"], members)
    return {"labelled": len(table), "images_train": images}
