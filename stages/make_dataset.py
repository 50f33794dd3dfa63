"""Stage `make_dataset`: clean the text and preprocess the images of both raw splits."""

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.data.corrections import RAW_CORRECTIONS, merge_corrections, read_corrections
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


def preprocess_sources(archives: list[Path], sources: np.ndarray, names: list[str], path: Path, image: dict) -> np.ndarray:
    """Preprocess each row's image from its source's archive into one .npy (rows of source i: archives[i])."""
    settings = {"size": image["size"], "white_threshold": image["white_threshold"], "margin": image["margin"],
                "workers": image["workers"]}
    status = preprocess_archive(archives[0], [n if s == 0 else None for n, s in zip(names, sources)], path,
                                **settings)
    output = np.load(path, mmap_mode="r+")
    for number, archive in enumerate(archives[1:], start=1):
        rows = np.flatnonzero(sources == number)
        if len(rows) and archive.is_file():  # corrected products exported without any photo: no zip
            part = path.with_name(f"{path.stem}.part.npy")
            status[rows] = preprocess_archive(archive, [names[i] for i in rows], part, **settings)
            output[rows] = np.load(part)
            part.unlink()
    output.flush()
    return status


def build_split(name: str, raw_table: pd.DataFrame, archives: list[Path], sources: np.ndarray, out: Path,
                image: dict) -> dict:
    """Clean one split's table, preprocess its images into a .npy, write both; return its report."""
    table = clean_table(raw_table)
    log.info("%s: %d rows, preprocessing images from %s", name, len(table), [str(a) for a in archives])
    status = preprocess_sources(archives, sources, list(table["image_name"]), out / f"{name}_images.npy", image)
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
    corrections = read_corrections(raw / RAW_CORRECTIONS, files)
    raw_splits["labelled"], labelled_sources, corrections_report = merge_corrections(raw_splits["labelled"],
                                                                                    corrections)
    log.info("corrections: %s", corrections_report)
    # Source 0: the imported archive; source n + 1: corrections folder n.
    archives = {"labelled": [raw / files["images_train"], *(archive for _, archive in corrections)],
                "unlabelled": [raw / files["images_test"]]}
    sources = {"labelled": labelled_sources + 1, "unlabelled": np.zeros(len(raw_splits["unlabelled"]), dtype=int)}
    reports = {
        name: build_split(name, table, archives[name], sources[name], out, params["image"])
        for name, table in raw_splits.items()
    }
    reports["corrections"] = corrections_report
    # The import's own counts (e.g. images that matched no row), when the import stage wrote them.
    if (raw / IMPORT_REPORT).is_file():
        reports["import"] = json.loads((raw / IMPORT_REPORT).read_text())
    write_json(reports, args.report)


if __name__ == "__main__":
    main()
