"""The production prediction log: one JSON line per predicted product, with its input profile and no text.

The drift monitor compares these lines with the training data's profiles. Workers append to the
same file: each batch is one write() on a file opened with O_APPEND, so lines never interleave.
"""

import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rakuten_mm.monitoring.profile import input_profile
from rakuten_mm.serving.service import ProductInput

log = logging.getLogger(__name__)


def prediction_entry(product: ProductInput, result: dict, timestamp: str) -> dict:
    """One log line: time, model version and variant, the input profile, predicted code and confidence."""
    return {
        "ts": timestamp,
        "model_version": result["model_version"],
        "variant": result["variant"],
        # The profile is what may be kept of a product's text: lengths, flags and language only.
        **input_profile(product.designation, product.description, "image" in result["modalities"]),
        "prdtypecode": result["prdtypecode"],
        "confidence": result["probability"],
    }


class PredictionLog:
    """Appends prediction entries to a JSON Lines file; does nothing when no path is set."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, products: Sequence[ProductInput], results: Sequence[dict]) -> None:
        """Append one line per product; a failing disk is logged, never turned into a failed prediction."""
        if self.path is None or not products:
            return
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        lines = "".join(json.dumps(prediction_entry(product, result, timestamp), ensure_ascii=False) + "\n"
                        for product, result in zip(products, results, strict=True))
        try:
            # Opened per write: a log rotated or removed by an operator is recreated, not written into the void.
            handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(handle, lines.encode("utf-8"))
            finally:
                os.close(handle)
        except OSError as error:
            log.error("cannot append to the prediction log %s: %s", self.path, error)
