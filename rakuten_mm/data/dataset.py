"""The cleaned dataset between stages: one table and one uint8 image array per split, row-aligned."""

from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import CODE_TO_INDEX, CODES
from rakuten_mm.data.raw_layout import LABEL_COLUMN, RawLayoutError, image_filename
from rakuten_mm.data.splitting import duplicate_groups, duplicate_summary
from rakuten_mm.features.text import clean_text, is_missing

SPLITS = ("train", "val", "test")


def clean_table(raw: pd.DataFrame) -> pd.DataFrame:
    """Cleaned title and description next to the ids, the image name and (if labelled) the class index."""
    table = pd.DataFrame(index=raw.index.rename("index"))
    table["productid"] = raw["productid"].astype("int64")
    table["imageid"] = raw["imageid"].astype("int64")
    table["title"] = [clean_text(value) for value in raw["designation"]]
    table["description"] = [clean_text(value) for value in raw["description"]]
    table["description_missing"] = [is_missing(value) for value in raw["description"]]
    table["image_name"] = [image_filename(i, p) for i, p in zip(table["imageid"], table["productid"], strict=True)]
    if LABEL_COLUMN in raw.columns:
        unknown = sorted(set(raw[LABEL_COLUMN]) - set(CODES))
        if unknown:
            raise RawLayoutError(f"{LABEL_COLUMN}: unknown product type codes {unknown[:5]}")
        table[LABEL_COLUMN] = raw[LABEL_COLUMN].astype("int64")
        table["label"] = [CODE_TO_INDEX[code] for code in table[LABEL_COLUMN]]
    return table


def data_report(table: pd.DataFrame, image_status: np.ndarray, status_names: dict[int, str]) -> dict:
    """Rows, image problems, empty titles, duplicate ids and per-class counts of one split."""
    report = {
        "rows": int(len(table)),
        "empty_titles": int((table["title"] == "").sum()),
        "missing_descriptions": int(table["description_missing"].sum()),
        "duplicate_productids": int(table["productid"].duplicated().sum()),
        "duplicate_imageids": int(table["imageid"].duplicated().sum()),
    }
    for code, name in status_names.items():
        report[f"images_{name}"] = int((image_status == code).sum())
    # The split stage keeps each group of identical texts in one split (rakuten_mm.data.splitting).
    labels = table[LABEL_COLUMN].to_numpy() if LABEL_COLUMN in table.columns else None
    report.update(duplicate_summary(duplicate_groups(table["title"], table["description"]), labels))
    if LABEL_COLUMN in table.columns:
        counts = table[LABEL_COLUMN].value_counts()
        report["class_counts"] = {str(code): int(counts.get(code, 0)) for code in CODES}
    return report


def write_split_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a cleaned table as CSV (index kept)."""
    table.to_csv(path, index=True)


def read_split_table(path: str | Path) -> pd.DataFrame:
    """Read a cleaned table; blank text fields come back as empty strings, not NaN."""
    table = pd.read_csv(path, index_col="index", keep_default_na=False, dtype={"title": str, "description": str})
    table["has_image"] = table["has_image"].astype(str).str.lower() == "true"
    return table


def load_images(path: str | Path) -> np.ndarray:
    """Memory-map a uint8 image array written by make_dataset."""
    return np.load(path, mmap_mode="r")


def rows_of(split_table: pd.DataFrame, split: str) -> np.ndarray:
    """Row positions (into the labelled table and image array) that belong to one split."""
    return split_table.index[split_table["split"] == split].to_numpy()
