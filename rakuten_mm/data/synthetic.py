"""A deterministic synthetic sample in the challenge layout: the project's default, offline data.

Every row is generated from its own random stream (seed, row index), so the files are byte-identical
for the same arguments whatever the number of worker processes.
"""

import logging
import multiprocessing
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from rakuten_mm.categories import CLASS_COUNTS, CODES, N_CLASSES
from rakuten_mm.data.archive import write_stored_zip
from rakuten_mm.data.raw_layout import LABEL_COLUMN, image_filename
from rakuten_mm.data.synthetic_images import IMAGE_CORRUPT, IMAGE_MISSING, IMAGE_OK, make_image_bytes
from rakuten_mm.data.synthetic_text import make_product_text

log = logging.getLogger(__name__)

DEFAULT_FILES = {
    "x_train": "X_train_update.csv",
    "y_train": "Y_train_CVw08PX.csv",
    "x_test": "X_test_update.csv",
    "images_train": "images_train.zip",
    "images_test": "images_test.zip",
}

# Seed keys: [seed, ROW_KEY, row, stream] for per-row streams, [seed, SPLIT_KEY, stream, split] for
# per-split draws. The distinct second word keeps the two families of streams from ever colliding.
ROW_KEY, SPLIT_KEY = 1, 2
IMAGE_STREAM = 1
LABEL_STREAM, FATE_STREAM, PRODUCT_ID_STREAM, IMAGE_ID_STREAM = 1, 2, 3, 4
TRAIN_SPLIT, TEST_SPLIT = 1, 2

# Id ranges seen in the challenge: (share, low, high). Product ids cluster in two bands;
# image ids are mostly recent (1.0e9-1.33e9) with an older tail.
PRODUCT_ID_BANDS = ((0.4, 100_000, 1_500_000_000), (0.6, 2_500_000_000, 4_300_000_000))
IMAGE_ID_BANDS = ((0.15, 100_000, 1_000_000_000), (0.85, 1_000_000_000, 1_330_000_000))
ID_BATCH = 4096

# Rows per pool.imap call: caps the JPEGs waiting in memory (~25 KB each) whatever the data size.
IMAGE_WINDOW = 1024
IMAGE_CHUNK = 16


def split_rng(seed: int, stream: int, split: int) -> np.random.Generator:
    """The generator of one per-split draw (labels, image fates, ids)."""
    return np.random.default_rng([seed, SPLIT_KEY, stream, split])


def text_rng(seed: int, row: int) -> random.Random:
    """The row's text generator (str seeds hash with SHA-512: stable across processes and runs)."""
    return random.Random(f"synthetic-text:{seed}:{row}")


def allocate_class_counts(n_rows: int) -> dict[int, int]:
    """Rows per class proportional to the real counts (largest remainder; >= 1 each when n >= 27)."""
    total = sum(CLASS_COUNTS.values())
    quotas = {code: n_rows * CLASS_COUNTS[code] / total for code in CODES}
    counts = {code: int(quota) for code, quota in quotas.items()}
    if n_rows >= N_CLASSES:
        counts = {code: max(count, 1) for code, count in counts.items()}
    # Hand out (or take back) rows one at a time, by how far each class sits from its quota.
    while sum(counts.values()) < n_rows:
        code = max(CODES, key=lambda c: (quotas[c] - counts[c], -c))
        counts[code] += 1
    while sum(counts.values()) > n_rows:
        code = min((c for c in CODES if counts[c] > 1), key=lambda c: (quotas[c] - counts[c], c))
        counts[code] -= 1
    return counts


def draw_codes(n_rows: int, seed: int, split: int) -> np.ndarray:
    """The split's product type codes in the real proportions, shuffled."""
    counts = allocate_class_counts(n_rows)
    codes = np.repeat(np.array(CODES, dtype=np.int64), [counts[code] for code in CODES])
    return split_rng(seed, LABEL_STREAM, split).permutation(codes)


def draw_unique_ids(count: int, rng: np.random.Generator, bands: tuple) -> np.ndarray:
    """Distinct ids from a mixture of uniform bands; the first k ids do not depend on count."""
    shares = np.array([band[0] for band in bands])
    seen, ids = set(), []
    while len(ids) < count:
        band = rng.choice(len(bands), size=ID_BATCH, p=shares / shares.sum())
        lows, highs = np.array([b[1] for b in bands])[band], np.array([b[2] for b in bands])[band]
        for value in rng.integers(lows, highs).tolist():
            if value not in seen:
                seen.add(value)
                ids.append(value)
    return np.array(ids[:count], dtype=np.int64)


def make_feature_table(codes: np.ndarray, first_row: int, productids: np.ndarray, imageids: np.ndarray,
                       seed: int) -> pd.DataFrame:
    """designation, description, productid, imageid for rows first_row.. (unnamed index)."""
    texts = [make_product_text(int(code), text_rng(seed, first_row + i)) for i, code in enumerate(codes)]
    return pd.DataFrame(
        {
            "designation": [text.designation for text in texts],
            "description": [np.nan if text.description is None else text.description for text in texts],
            "productid": productids,
            "imageid": imageids,
        },
        index=pd.RangeIndex(first_row, first_row + len(codes)),
    )


def choose_image_fates(n_rows: int, missing_rate: float, corrupt_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Which rows lose their photo or get broken bytes (at least one each when the rate is > 0)."""
    def share(rate: float) -> int:
        """Rows for a rate; small samples still get one, so the pipeline's accounting is exercised."""
        return 0 if rate <= 0 or n_rows == 0 else max(1, round(n_rows * rate))

    n_missing = min(share(missing_rate), n_rows)
    n_corrupt = min(share(corrupt_rate), n_rows - n_missing)
    order = rng.permutation(n_rows)
    fates = np.full(n_rows, IMAGE_OK, dtype=object)
    fates[order[:n_missing]] = IMAGE_MISSING
    fates[order[n_missing:n_missing + n_corrupt]] = IMAGE_CORRUPT
    return fates


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of up to size items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@contextmanager
def ordered_mapper(workers: int) -> Iterator[Callable]:
    """A map(function, items) run by `workers` processes, in order, with a bounded window in flight."""
    if workers <= 1:
        yield map
        return
    # spawn: no fork of a process that may hold threads (tqdm, BLAS); workers import only numpy and PIL.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        def ordered_map(function: Callable, items: Iterable) -> Iterator:
            """Results in input order, one window of tasks at a time."""
            for window in batched(items, IMAGE_WINDOW):
                yield from pool.imap(function, window, chunksize=IMAGE_CHUNK)

        yield ordered_map


def iter_image_members(table: pd.DataFrame, codes: np.ndarray, fates: np.ndarray, seed: int,
                       mapper: Callable, desc: str) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) per row with a photo, in row order, rendered by the mapper's workers."""
    tasks = (
        ([seed, ROW_KEY, int(row), IMAGE_STREAM], int(code), fate)
        for row, code, fate in zip(table.index, codes, fates, strict=True)
    )
    names = [image_filename(i, p) for i, p in zip(table["imageid"], table["productid"], strict=True)]
    images = tqdm(mapper(make_image_bytes, tasks), total=len(names), desc=desc, unit="img")
    for name, data in zip(names, images, strict=True):
        if data is not None:
            yield name, data


def write_split(out_dir: Path, names: dict, split: str, table: pd.DataFrame, codes: np.ndarray, seed: int,
                fates: np.ndarray, mapper: Callable) -> dict:
    """Write one split's CSV(s) and image archive; return its counts."""
    x_path = out_dir / names[f"x_{split}"]
    log.info("writing %s (%d rows)", x_path, len(table))
    table.to_csv(x_path)
    if split == "train":
        y_path = out_dir / names["y_train"]
        log.info("writing %s", y_path)
        pd.DataFrame({LABEL_COLUMN: codes}, index=table.index).to_csv(y_path)
    zip_path = out_dir / names[f"images_{split}"]
    log.info("writing %s (%d missing, %d corrupt photos)", zip_path,
             int((fates == IMAGE_MISSING).sum()), int((fates == IMAGE_CORRUPT).sum()))
    written = write_stored_zip(zip_path, iter_image_members(table, codes, fates, seed, mapper, f"images_{split}"))
    return {
        f"images_{split}": written,
        f"missing_images_{split}": int((fates == IMAGE_MISSING).sum()),
        f"corrupt_images_{split}": int((fates == IMAGE_CORRUPT).sum()),
    }


def generate_sample(out_dir, n_labelled: int, n_unlabelled: int, seed: int, workers: int = 2,
                    files: dict | None = None, missing_image_rate: float = 0.002,
                    corrupt_image_rate: float = 0.001) -> dict:
    """Write a synthetic X_train/Y_train/X_test and image zips into out_dir; return the counts."""
    unknown = set(files or {}) - set(DEFAULT_FILES)
    if unknown:
        raise ValueError(f"generate_sample: unknown file keys {sorted(unknown)}")
    names = {**DEFAULT_FILES, **(files or {})}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_total = n_labelled + n_unlabelled
    productids = draw_unique_ids(n_total, split_rng(seed, PRODUCT_ID_STREAM, 0), PRODUCT_ID_BANDS)
    imageids = draw_unique_ids(n_total, split_rng(seed, IMAGE_ID_STREAM, 0), IMAGE_ID_BANDS)
    summary = {"labelled": n_labelled, "unlabelled": n_unlabelled}
    splits = (("train", TRAIN_SPLIT, 0, n_labelled), ("test", TEST_SPLIT, n_labelled, n_unlabelled))
    with ordered_mapper(workers) as mapper:
        for split, split_id, first, count in splits:
            codes = draw_codes(count, seed, split_id)
            ids = slice(first, first + count)
            log.info("generating %d %s texts", count, split)
            table = make_feature_table(codes, first, productids[ids], imageids[ids], seed)
            fates = choose_image_fates(count, missing_image_rate, corrupt_image_rate,
                                       split_rng(seed, FATE_STREAM, split_id))
            summary.update(write_split(out_dir, names, split, table, codes, seed, fates, mapper))
    log.info("synthetic sample in %s: %s", out_dir, summary)
    return summary
