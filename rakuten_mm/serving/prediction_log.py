"""The production prediction log: one JSON line per predicted product, with its input profile and no text.

The drift monitor compares these lines with the training data's profiles. A request only queues
what it predicted; a background thread wakes every WRITE_INTERVAL_SECONDS, profiles the queued
products (language, lengths) and appends their lines, so an answer neither waits for them nor
wakes a thread. Workers append to the same file: each batch of lines
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
# A timer rather than a wake-up per request: handing the GIL to a woken thread costs each answer.
WRITE_INTERVAL_SECONDS = 0.2
CLOSE_TIMEOUT_SECONDS = 10


class PredictionLogError(RuntimeError):
    """The prediction log's folder cannot be created: the API does not start."""


def prediction_entry(designation: str, description: str | None, result: dict, timestamp: str) -> dict:
    """One log line: time, model version and variant, the input profile, predicted code, confidence and decision."""
    return {
        "ts": timestamp,
        "model_version": result["model_version"],
        "variant": result["variant"],
        # The profile is what may be kept of a product's text: lengths, flags and language only.
        **input_profile(designation, description, "image" in result["modalities"]),
        "prdtypecode": result["prdtypecode"],
        "confidence": result["probability"],
        "decision": result["decision"],
    }


class PeriodicWriter:
    """A daemon thread that calls write() every WRITE_INTERVAL_SECONDS and once more when closed (no path: none)."""

    thread_name = "writer"

    def __init__(self, path: Path | None):
        self.path = path
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._closing = threading.Event()

    def start(self) -> None:
        """Start the writer thread (the app's startup): entries are queued from now on."""
        if self.path is not None and self._writer is None:
            self._closing.clear()
            self._writer = threading.Thread(target=self._write_until_closed, name=self.thread_name, daemon=True)
            self._writer.start()

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._writer is not None:
            self._closing.set()
            self._writer.join(CLOSE_TIMEOUT_SECONDS)
            self._writer = None

    def _write_until_closed(self) -> None:
        """Every WRITE_INTERVAL_SECONDS, write what was queued; once more when closing."""
        while not self._closing.wait(WRITE_INTERVAL_SECONDS):
            self.write()
        self.write()

    def write(self) -> None:
        """Write what is queued (the subclass's own way)."""
        raise NotImplementedError


class PredictionLog(PeriodicWriter):
    """Appends prediction entries to a JSON Lines file from a background thread; nothing when no path is set."""

    thread_name = "prediction-log"

    def __init__(self, path: Path | None):
        super().__init__(path)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PredictionLogError(f"cannot create the prediction log's folder {path.parent} "
                                     f"(RAKUTEN_API_PREDICTION_LOG={path}): {error.strerror or error}") from None

    def record(self, products: Sequence, results: Sequence[dict]) -> None:
        """Queue one line per product (each with designation and description) for the writer thread."""
        if self._writer is None or not products:
            return
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._queue.put([(product.designation, product.description, result, timestamp)
                         for product, result in zip(products, results, strict=True)])

    def write(self) -> None:
        """Profile and append every product queued so far."""
        entries = []
        while not self._queue.empty():
            entries.extend(self._queue.get())
        if entries:
            self._append("".join(json.dumps(prediction_entry(*entry), ensure_ascii=False) + "\n" for entry in entries))

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
