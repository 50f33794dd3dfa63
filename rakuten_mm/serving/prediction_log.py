"""The production prediction log: one JSON line per predicted product, with its input profile and no text.

The drift monitor compares these lines with the training data's profiles. A request only queues
what it predicted; a background thread profiles the products (language, lengths) and appends the
lines, so the answer never waits for them. Workers append to the same file: each batch of lines
is one write() on a file opened with O_APPEND, so lines never interleave.
"""

import json
import logging
import os
import queue
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rakuten_mm.monitoring.profile import input_profile

log = logging.getLogger(__name__)
STOP = None  # queued by close(): the writer writes what came before it, then ends
CLOSE_TIMEOUT_SECONDS = 10


class PredictionLogError(RuntimeError):
    """The prediction log's folder cannot be created: the API does not start."""


def prediction_entry(designation: str, description: str | None, result: dict, timestamp: str) -> dict:
    """One log line: time, model version and variant, the input profile, predicted code and confidence."""
    return {
        "ts": timestamp,
        "model_version": result["model_version"],
        "variant": result["variant"],
        # The profile is what may be kept of a product's text: lengths, flags and language only.
        **input_profile(designation, description, "image" in result["modalities"]),
        "prdtypecode": result["prdtypecode"],
        "confidence": result["probability"],
    }


class PredictionLog:
    """Appends prediction entries to a JSON Lines file from a background thread; nothing when no path is set."""

    def __init__(self, path: Path | None):
        self.path = path
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PredictionLogError(f"cannot create the prediction log's folder {path.parent} "
                                     f"(RAKUTEN_API_PREDICTION_LOG={path}): {error.strerror or error}") from None

    def start(self) -> None:
        """Start the writer thread (the app's startup): lines are queued from now on."""
        if self.path is not None and self._writer is None:
            self._writer = threading.Thread(target=self._write_until_closed, name="prediction-log", daemon=True)
            self._writer.start()

    def record(self, products: Sequence, results: Sequence[dict]) -> None:
        """Queue one line per product (each with designation and description) for the writer thread."""
        if self._writer is None or not products:
            return
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._queue.put([(product.designation, product.description, result, timestamp)
                         for product, result in zip(products, results, strict=True)])

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._writer is not None:
            self._queue.put(STOP)
            self._writer.join(CLOSE_TIMEOUT_SECONDS)
            self._writer = None

    def _write_until_closed(self) -> None:
        """Append each queued batch, with any others already waiting (one write), until STOP."""
        stopping = False
        while not stopping:
            entries, batch = [], self._queue.get()
            while batch is not STOP:
                entries.extend(batch)
                if self._queue.empty():
                    break
                batch = self._queue.get()
            stopping = batch is STOP
            if entries:
                self._append("".join(json.dumps(prediction_entry(*entry), ensure_ascii=False) + "\n"
                                     for entry in entries))

    def _append(self, lines: str) -> None:
        """One write of the lines; a failing disk is logged, never turned into a failed prediction."""
        try:
            # Opened per write: a log rotated or removed by an operator is recreated, not written into the void.
            handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(handle, lines.encode("utf-8"))
            finally:
                os.close(handle)
        except OSError as error:
            log.error("cannot append to the prediction log %s: %s", self.path, error)
