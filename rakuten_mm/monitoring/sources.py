"""The two sides of a drift check: the API's prediction log and the pipeline's training data and test predictions."""

import json
import logging
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import CODES
from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.monitoring.profile import cleaned_profile

log = logging.getLogger(__name__)

# The log's field for the predicted class is the API's (prdtypecode); the report's is predicted_class.
LOG_FIELD_NAMES = {"prdtypecode": "predicted_class"}


def last_lines_of(path: Path, last_lines: int | None) -> list[str]:
    """The file's last lines (all of them when last_lines is None), read in one pass."""
    with open(path, encoding="utf-8") as handle:
        return list(deque(handle, maxlen=last_lines))


def parse_log_lines(lines: list[str]) -> pd.DataFrame:
    """One row per valid JSON object line; blank, truncated or non-object lines are skipped and counted."""
    records, skipped = [], 0
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif line.strip():
            skipped += 1
    if skipped:
        # A line cut short by a crash or a concurrent write should not stop the monitor.
        log.warning("skipped %d unreadable prediction log lines", skipped)
    return pd.DataFrame.from_records(records)


def read_production_log(path: str | Path, last_lines: int | None, last_days: float | None, variant: str | None,
                        now: datetime) -> pd.DataFrame:
    """The recent production predictions: last lines, then last days, then one model variant."""
    path = Path(path)
    if not path.is_file():
        log.warning("no prediction log at %s", path)
        return pd.DataFrame()
    frame = parse_log_lines(last_lines_of(path, last_lines)).rename(columns=LOG_FIELD_NAMES)
    if frame.empty:
        return frame
    if last_days is not None:
        # A line without a readable timestamp cannot be placed in the window: it is left out.
        stamps = frame["ts"] if "ts" in frame else pd.Series(None, index=frame.index, dtype=object)
        timestamps = pd.to_datetime(stamps, utc=True, errors="coerce", format="ISO8601")
        frame = frame[timestamps >= pd.Timestamp(now - timedelta(days=last_days))]
    if variant is not None and "variant" in frame:
        frame = frame[frame["variant"] == variant]
    return frame.reset_index(drop=True)


def reference_inputs(dataset_dir: str | Path, split_path: str | Path, split_name: str) -> pd.DataFrame:
    """Input profiles of one split of the cleaned labelled table, computed as the API computes them."""
    table = read_split_table(Path(dataset_dir) / "labelled.csv")
    split = pd.read_csv(split_path, index_col="row")
    rows = table.iloc[rows_of(split, split_name)]
    # The table's text is cleaned already and its flag is the raw description's, as the API sees it.
    profiles = [
        cleaned_profile(title, description, missing, has_image)
        for title, description, missing, has_image in
        zip(rows["title"], rows["description"], rows["description_missing"], rows["has_image"], strict=True)
    ]
    return pd.DataFrame.from_records(profiles)


def reference_predictions(probabilities_path: str | Path) -> pd.DataFrame:
    """Predicted class and top-1 probability of every evaluated test row (the evaluate stage's fused output)."""
    probabilities = np.load(probabilities_path)
    return pd.DataFrame({"predicted_class": np.asarray(CODES)[probabilities.argmax(axis=1)],
                         "confidence": probabilities.max(axis=1)})


def load_reference(params: dict) -> dict[str, pd.Series]:
    """Every feature's reference values: inputs from the training split, predictions from the test split."""
    inputs = reference_inputs(params["dataset"], params["split"], params["split_name"])
    predictions = reference_predictions(params["probabilities"])
    return {**{name: inputs[name] for name in inputs}, **{name: predictions[name] for name in predictions}}
