"""Inference latency per item at a given batch size."""

import time
from collections.abc import Callable

import numpy as np


def per_item_latency_ms(predict_rows: Callable[[np.ndarray], object], n_rows: int,
                        batch_size: int, repeats: int) -> dict:
    """Median and p95 milliseconds per item when predicting batches of batch_size rows."""
    rows = np.arange(min(batch_size, n_rows))
    predict_rows(rows)  # warm-up: graph tracing and allocation are not per-request costs
    per_item = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_rows(rows)
        per_item.append((time.perf_counter() - start) * 1000.0 / len(rows))
    return {
        "batch_size": int(len(rows)),
        "per_item_ms_p50": float(np.percentile(per_item, 50)),
        "per_item_ms_p95": float(np.percentile(per_item, 95)),
    }
