"""The review queue: products the API answered `review`, the reviewers' decisions, and their export as training data.

    python -m rakuten_mm.serving.review export --out corrections/2025-06-01 [--database review/queue.sqlite]

One SQLite file in WAL mode (RAKUTEN_API_REVIEW_DATABASE) is shared by every uvicorn worker. A request
only queues its `review` products in memory; a background thread of each worker wakes every
WRITE_INTERVAL_SECONDS, makes the small JPEG copies and writes them in one transaction, so /predict
never waits for the disk (prediction_log.PeriodicWriter, as the prediction log). What is kept of a product: title, description, a JPEG copy of at most
RAKUTEN_API_REVIEW_PHOTO_SIDE pixels a side, productid and imageid, the top-5 codes, the model version
and the time; nothing about the caller (no user, address or request id).

Decisions are append-only (triggers refuse UPDATE and DELETE): who, when, the model version, the
predicted code and the chosen one (NULL: skipped). A product may be decided several times, by several
reviewers; the latest decision that is not a skip is its label. `export` writes those labels as a
folder in the challenge layout (X, Y, images zip) that `import` reads (contract 2 of issue 21).
"""

import argparse
import base64
import hashlib
import io
import json
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from PIL import Image

from rakuten_mm.categories import CATEGORY_NAMES, CODES
from rakuten_mm.data.raw_layout import FEATURE_COLUMNS, LABEL_COLUMN, write_labelled_folder
from rakuten_mm.data.synthetic import DEFAULT_FILES
from rakuten_mm.serving.prediction_log import PeriodicWriter

log = logging.getLogger(__name__)
AUTO, REVIEW = "auto", "review"
PENDING, DECIDED, SKIPPED = "pending", "decided", "skipped"
# Products without productid/imageid get ids above every real one (real ids stay below 5e9), stable per
# queue item; the exported row ids are in the same range, so corrections never collide with the data's.
SYNTHETIC_ID_BASE = 9_000_000_000
# Retention is also applied when nothing new arrives, at most this often.
PURGE_INTERVAL_SECONDS = 60.0
BUSY_TIMEOUT_SECONDS = 10.0
PHOTO_QUALITY = 80
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- AUTOINCREMENT: a purged item's id is never reused
    product_key TEXT NOT NULL UNIQUE,
    designation TEXT NOT NULL,
    description TEXT,
    productid INTEGER,
    imageid INTEGER,
    photo BLOB,
    prdtypecode INTEGER NOT NULL,
    probability REAL NOT NULL,
    top5 TEXT NOT NULL,
    model_version TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS items_by_confidence ON items (status, probability, id);
CREATE INDEX IF NOT EXISTS items_by_time ON items (status, received_at);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items (id),
    reviewer TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    model_version TEXT NOT NULL,
    predicted_code INTEGER NOT NULL,
    chosen_code INTEGER                     -- NULL: the reviewer skipped the product
);
CREATE INDEX IF NOT EXISTS decisions_by_item ON decisions (item_id, id);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
"""
# A product already decided or skipped is not queued again; one still waiting takes the newest prediction.
UPSERT = """
INSERT INTO items (product_key, designation, description, productid, imageid, photo, prdtypecode, probability,
                   top5, model_version, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (product_key) DO UPDATE SET
    designation = excluded.designation, description = excluded.description, productid = excluded.productid,
    imageid = excluded.imageid, photo = excluded.photo, prdtypecode = excluded.prdtypecode,
    probability = excluded.probability, top5 = excluded.top5, model_version = excluded.model_version,
    received_at = excluded.received_at
WHERE items.status = 'pending'
"""
ITEM_COLUMNS = ("id", "designation", "description", "productid", "imageid", "photo", "prdtypecode", "probability",
                "top5", "model_version", "received_at", "status")


class UnknownItemError(LookupError):
    """No queue item has that id (never queued, or purged)."""


def decide(probability: float, threshold: float | None) -> str:
    """auto when the top-1 fused probability reaches the served threshold; review otherwise, or without one."""
    return AUTO if threshold is not None and probability >= threshold else REVIEW


def timestamp(moment: datetime) -> str:
    """A UTC time as fixed-width ISO text, so that SQLite compares times as strings."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the queue database in WAL mode (readers never wait for the writers), schema created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it consistent; a power cut may lose the last writes
    db.executescript(SCHEMA)
    return db


def product_key(product) -> str:
    """What makes two predictions the same product: its productid, else its title, description and photo."""
    if product.productid is not None:
        return f"productid:{product.productid}"
    digest = hashlib.sha256()
    for part in (product.designation, product.description or ""):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(product.image_bytes or b"")
    return f"content:{digest.hexdigest()}"


def small_jpeg(image_bytes: bytes | None, side: int) -> bytes | None:
    """A JPEG copy of the photo, at most `side` pixels a side (None without a readable photo)."""
    if not image_bytes:
        return None
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            image.draft("RGB", (side, side))  # a JPEG is decoded at a reduced scale: cheap
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=PHOTO_QUALITY)
            return buffer.getvalue()
    except Exception:  # the prediction used the text alone for such a photo: keep the product without it
        return None


def item_row(product, result: dict, received_at: str, photo_side: int) -> tuple:
    """The UPSERT parameters of one product answered `review`."""
    top5 = [{"prdtypecode": entry["prdtypecode"], "probability": entry["probability"]} for entry in result["top5"]]
    return (product_key(product), product.designation, product.description, product.productid, product.imageid,
            small_jpeg(product.image_bytes, photo_side), result["prdtypecode"], result["probability"],
            json.dumps(top5), result["model_version"], received_at)


def purge(db: sqlite3.Connection, now: datetime, retention_days: float, max_pending: int) -> int:
    """Drop the waiting products older than the retention, then the oldest past the cap; how many went."""
    cutoff = timestamp(now - timedelta(days=retention_days))
    expired = db.execute("DELETE FROM items WHERE status = ? AND received_at < ?", (PENDING, cutoff)).rowcount
    over = db.execute(
        "DELETE FROM items WHERE id IN (SELECT id FROM items WHERE status = ? "
        "ORDER BY received_at DESC, id DESC LIMIT -1 OFFSET ?)", (PENDING, max_pending)).rowcount
    return expired + over


class ReviewQueue(PeriodicWriter):
    """Each worker's writer of `review` products into the shared database; does nothing when no path is set."""

    thread_name = "review-queue"

    def __init__(self, path: Path | None, retention_days: float = 30.0, max_pending: int = 20_000,
                 photo_side: int = 160):
        super().__init__(path)
        self.retention_days, self.max_pending, self.photo_side = retention_days, max_pending, photo_side
        self._write_lock = threading.Lock()
        self._purged_at = 0.0
        if path is not None:
            with closing(connect(path)):  # a path that cannot hold a database stops the start
                pass

    @classmethod
    def from_settings(cls, settings) -> "ReviewQueue":
        """The queue the settings describe (RAKUTEN_API_REVIEW_*)."""
        return cls(settings.review_database, settings.review_retention_days, settings.review_max_pending,
                   settings.review_photo_side)

    def record(self, products: Sequence, results: Sequence[dict]) -> None:
        """Queue the products answered `review` for the writer thread (no work on the request's path)."""
        if self._writer is None:
            return
        answered = [(product, result) for product, result in zip(products, results, strict=True)
                    if result["decision"] == REVIEW]
        if answered:
            self._queue.put((timestamp(datetime.now(UTC)), answered))

    def flush(self, now: datetime | None = None) -> None:
        """Write what is queued now, then apply the retention and the cap as of `now`."""
        if self.path is None:
            return
        batches = []
        while not self._queue.empty():
            batches.append(self._queue.get())
        # The latest prediction of a product wins: a product sent a hundred times is copied once.
        rows = {}
        for received_at, answered in batches:
            for product, result in answered:
                rows[product_key(product)] = (product, result, received_at)
        with self._write_lock, closing(connect(self.path)) as db:
            params = [item_row(product, result, received_at, self.photo_side)
                      for product, result, received_at in rows.values()]
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(UPSERT, params)
                purge(db, now or datetime.now(UTC), self.retention_days, self.max_pending)
        self._purged_at = time.monotonic()

    def write(self) -> None:
        """Flush when products wait or the last purge is old; a failing disk is logged, never raised."""
        if self._queue.empty() and time.monotonic() - self._purged_at < PURGE_INTERVAL_SECONDS:
            return
        try:
            self.flush()
        except (sqlite3.Error, OSError) as error:
            log.error("cannot write to the review queue %s: %s", self.path, error)


# --- what the console reads and writes ---

def photo_uri(photo: bytes | None) -> str | None:
    """The small JPEG as a data: URI the page shows as is (the CSP allows data: images)."""
    return f"data:image/jpeg;base64,{base64.b64encode(photo).decode('ascii')}" if photo else None


def item_view(row: sqlite3.Row) -> dict:
    """One queue item as the API answers it: the top-5 with their French names, the photo as a data: URI."""
    top5 = [{**entry, "category": CATEGORY_NAMES[entry["prdtypecode"]]} for entry in json.loads(row["top5"])]
    return {"id": row["id"], "designation": row["designation"], "description": row["description"],
            "productid": row["productid"], "imageid": row["imageid"], "photo": photo_uri(row["photo"]),
            "prdtypecode": row["prdtypecode"], "category": CATEGORY_NAMES[row["prdtypecode"]],
            "probability": row["probability"], "top5": top5, "model_version": row["model_version"],
            "received_at": row["received_at"], "status": row["status"]}


def pending_items(path: Path, prdtypecode: int | None, limit: int,
                  after: tuple[float, int] | None = None) -> list[dict]:
    """Products waiting for review, least confident first (then oldest), optionally of one predicted code.

    after: the (probability, id) of the last item the caller has, for the next page.
    """
    where, params = ["status = ?"], [PENDING]
    if prdtypecode is not None:
        where.append("prdtypecode = ?")
        params.append(prdtypecode)
    if after is not None:
        where.append("(probability > ? OR (probability = ? AND id > ?))")
        params.extend((after[0], after[0], after[1]))
    query = (f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE {' AND '.join(where)} "
             "ORDER BY probability, id LIMIT ?")
    with closing(connect(path)) as db:
        return [item_view(row) for row in db.execute(query, (*params, limit))]


def queue_summary(path: Path) -> dict:
    """How many products wait, in all and per predicted code, and how many decisions were recorded."""
    with closing(connect(path)) as db:
        counts = dict(db.execute("SELECT prdtypecode, COUNT(*) FROM items WHERE status = ? "
                                 "GROUP BY prdtypecode", (PENDING,)).fetchall())
        decisions = db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    return {"pending": sum(counts.values()), "decisions": decisions,
            "by_class": [{"prdtypecode": code, "category": CATEGORY_NAMES[code], "pending": counts[code]}
                         for code in CODES if code in counts]}


def record_decision(path: Path, item_id: int, reviewer: str, chosen_code: int | None,
                    now: datetime | None = None) -> dict:
    """Append one decision (chosen_code None: skip) and mark the item decided or skipped; UnknownItemError."""
    if chosen_code is not None and chosen_code not in CATEGORY_NAMES:
        raise ValueError(f"{chosen_code} is not one of the 27 product type codes")
    decided_at = timestamp(now or datetime.now(UTC))
    with closing(connect(path)) as db, db:
        db.execute("BEGIN IMMEDIATE")
        item = db.execute("SELECT prdtypecode, model_version FROM items WHERE id = ?", (item_id,)).fetchone()
        if item is None:
            raise UnknownItemError(f"no review item {item_id}")
        decision_id = db.execute(
            "INSERT INTO decisions (item_id, reviewer, decided_at, model_version, predicted_code, chosen_code) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, reviewer, decided_at, item["model_version"], item["prdtypecode"], chosen_code)).lastrowid
        db.execute("UPDATE items SET status = ? WHERE id = ?", (SKIPPED if chosen_code is None else DECIDED, item_id))
    action = "skip" if chosen_code is None else "confirm" if chosen_code == item["prdtypecode"] else "correct"
    return {"id": decision_id, "item_id": item_id, "reviewer": reviewer, "decided_at": decided_at,
            "model_version": item["model_version"], "predicted_code": item["prdtypecode"],
            "chosen_code": chosen_code, "action": action}


def decision_log(path: Path) -> list[dict]:
    """Every decision ever recorded, oldest first."""
    with closing(connect(path)) as db:
        return [dict(row) for row in db.execute("SELECT * FROM decisions ORDER BY id")]


# --- the export: corrections as a challenge-layout folder ---

LATEST_LABELS = """
SELECT items.id, designation, description, productid, imageid, photo, chosen_code
FROM items JOIN decisions ON decisions.id = (
    SELECT MAX(id) FROM decisions WHERE item_id = items.id AND chosen_code IS NOT NULL)
ORDER BY items.id
"""


def corrections_table(rows: list[sqlite3.Row]) -> pd.DataFrame:
    """The labelled table of the export: stable row ids, real ids or ids derived from the queue item."""
    table = pd.DataFrame({
        "designation": [row["designation"] for row in rows],
        "description": [row["description"] for row in rows],
        "productid": [row["productid"] if row["productid"] is not None else SYNTHETIC_ID_BASE + row["id"]
                      for row in rows],
        "imageid": [row["imageid"] if row["imageid"] is not None else SYNTHETIC_ID_BASE + row["id"] for row in rows],
        LABEL_COLUMN: [row["chosen_code"] for row in rows],
    }, index=pd.Index([SYNTHETIC_ID_BASE + row["id"] for row in rows], dtype="int64"))
    return table[[*FEATURE_COLUMNS, LABEL_COLUMN]]


def export_corrections(path: Path, out_dir: Path, files: dict = DEFAULT_FILES) -> dict:
    """Write each decided product once, with its latest non-skip label, as a folder `import` reads."""
    with closing(connect(path)) as db:
        rows = db.execute(LATEST_LABELS).fetchall()
    table = corrections_table(rows)
    photos = [(int(imageid), int(productid), row["photo"])
              for row, imageid, productid in zip(rows, table["imageid"], table["productid"], strict=True)
              if row["photo"]]
    return write_labelled_folder(table, photos, out_dir, files)


def import_files(params_path: Path) -> dict:
    """The challenge file names of params.yaml's import.files, or the challenge's own without that file."""
    if not params_path.is_file():
        return DEFAULT_FILES
    from rakuten_mm.params import load_params

    return load_params(params_path)["import"]["files"]


def main(argv: list[str] | None = None) -> int:
    """The export command: write the corrections folder, print how many rows and photos it holds."""
    from rakuten_mm.serving.config import Settings

    parser = argparse.ArgumentParser(prog="python -m rakuten_mm.serving.review", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the reviewers' labels as a challenge-layout folder")
    export.add_argument("--out", type=Path, required=True, help="folder to write (X, Y and images zip)")
    export.add_argument("--database", type=Path, default=None,
                        help="review database (default: RAKUTEN_API_REVIEW_DATABASE or review/queue.sqlite)")
    export.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file whose import.files names the files (default: params.yaml)")
    args = parser.parse_args(argv)
    database = args.database or Settings().review_database
    if database is None or not database.is_file():
        print(f"error: no review database at {database}", file=sys.stderr)
        return 1
    written = export_corrections(database, args.out, import_files(args.params))
    print(f"exported {written['labelled']} rows and {written['images_train']} photos to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
