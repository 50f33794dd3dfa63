"""Stage `make_dataset`: clean the text and preprocess the images of both raw splits."""

import json
import logging
import sys
from pathlib import Path

import pandas as pd

from rakuten_mm.data.dataset import clean_table, data_report, write_split_table
from rakuten_mm.data.raw_layout import (
    FEATURE_COLUMNS, IMPORT_REPORT, RawLayoutError, read_features, read_labelled,
)
from rakuten_mm.features.images import STATUS_MISSING, STATUS_OK, STATUS_UNREADABLE, preprocess_archive
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.stage import start_stage

log = logging.getLogger("make_dataset")
STATUS_NAMES = {STATUS_OK: "ok", STATUS_MISSING: "missing", STATUS_UNREADABLE: "unreadable"}


def read_raw_splits(raw: Path, files: dict) -> dict[str, pd.DataFrame]:
    """The labelled and unlabelled raw tables; a missing test file gives an empty table."""
    unlabelled_path = raw / files["x_test"]
    unlabelled = read_features(unlabelled_path) if unlabelled_path.is_file() else pd.DataFrame(columns=FEATURE_COLUMNS)
    return {"labelled": read_labelled(raw / files["x_train"], raw / files["y_train"]), "unlabelled": unlabelled}


def build_split(name: str, raw_table: pd.DataFrame, archive: Path, out: Path, image: dict) -> dict:
    """Clean one split's table, preprocess its images into a .npy, write both; return its report."""
    table = clean_table(raw_table)
    log.info("%s: %d rows, preprocessing images from %s", name, len(table), archive)
    status = preprocess_archive(
        archive, list(table["image_name"]), out / f"{name}_images.npy", size=image["size"],
        white_threshold=image["white_threshold"], margin=image["margin"], workers=image["workers"],
    )
    table["has_image"] = status == STATUS_OK
    write_split_table(table, out / f"{name}.csv")
    report = data_report(table, status, STATUS_NAMES)
    log.info("%s report: %s", name, {k: v for k, v in report.items() if k != "class_counts"})
    return report


def main() -> None:
    """Clean both raw splits and write their tables, image arrays and the data report."""
    params, args = start_stage("make_dataset", ["raw", "out", "report"], "Clean text, preprocess images.")
    raw, out, files = Path(args.raw), Path(args.out), params["import"]["files"]
    out.mkdir(parents=True, exist_ok=True)
    try:
        raw_splits = read_raw_splits(raw, files)
    except RawLayoutError as error:
        log.error("%s", error)
        sys.exit(1)
    archives = {"labelled": raw / files["images_train"], "unlabelled": raw / files["images_test"]}
    reports = {
        name: build_split(name, table, archives[name], out, params["image"])
        for name, table in raw_splits.items()
    }
    # The import's own counts (e.g. images that matched no row), when the import stage wrote them.
    if (raw / IMPORT_REPORT).is_file():
        reports["import"] = json.loads((raw / IMPORT_REPORT).read_text())
    write_json(reports, args.report)


if __name__ == "__main__":
    main()
