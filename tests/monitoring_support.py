"""Synthetic production traffic for the drift tests: generator products profiled as the API profiles them."""

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import CLASS_COUNTS, CODES
from rakuten_mm.data.synthetic_text import CLASS_WORDS_EN, make_product_text
from rakuten_mm.monitoring.profile import input_profile

# The import stage's default missing + corrupt image rates.
IMAGE_MISSING_RATE = 0.003
# The top three classes, where a skewed production puts half of its predictions.
SKEWED_CLASSES = (2583, 1560, 1300)
# Tries per row to draw an English product of a class that has English listings (about half succeed).
ENGLISH_TRIES = 20


def draw_classes(count: int, rng: random.Random) -> list[int]:
    """Classes in the real catalogue's proportions."""
    return rng.choices(CODES, weights=[CLASS_COUNTS[code] for code in CODES], k=count)


def product_of(code: int, rng: random.Random, english: bool):
    """One generated product; with english, an English one when the class has English listings."""
    product = make_product_text(code, rng)
    tries = ENGLISH_TRIES if english and code in CLASS_WORDS_EN else 0
    while tries and product.language != "en":
        product, tries = make_product_text(code, rng), tries - 1
    return product


def synthetic_profiles(count: int, seed: int, english: bool = False) -> pd.DataFrame:
    """Input profiles of generated products (and their true class), as the API would log them."""
    rng = random.Random(seed)
    rows = []
    for code in draw_classes(count, rng):
        product = product_of(code, rng, english)
        has_image = rng.random() >= IMAGE_MISSING_RATE
        rows.append({**input_profile(product.designation, product.description, has_image), "true_class": code})
    return pd.DataFrame.from_records(rows)


def simulated_predictions(true_classes, seed: int) -> pd.DataFrame:
    """A model's output on the reference: right 80% of the time, confidence Beta(6, 2)."""
    rng = np.random.default_rng(seed)
    true_classes = np.asarray(true_classes)
    wrong = rng.random(len(true_classes)) < 0.2
    predicted = np.where(wrong, rng.choice(CODES, size=len(true_classes)), true_classes)
    return pd.DataFrame({"predicted_class": predicted, "confidence": rng.beta(6.0, 2.0, size=len(true_classes))})


def resampled_predictions(reference: pd.DataFrame, count: int, seed: int) -> pd.DataFrame:
    """(class, confidence) pairs drawn with replacement from reference predictions: no drift by construction."""
    rows = np.random.default_rng(seed).integers(len(reference), size=count)
    return reference.iloc[rows].reset_index(drop=True)


def write_prediction_log(path: Path, production: pd.DataFrame, end: datetime, variant: str = "current",
                         spacing: timedelta = timedelta(minutes=1)) -> None:
    """Write production rows as the API's JSON lines, the last one stamped `end`, one per `spacing` before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        for position, row in enumerate(production.itertuples(index=False)):
            stamp = end - spacing * (len(production) - 1 - position)
            handle.write(json.dumps({
                "ts": stamp.isoformat(), "model_version": "test", "variant": variant,
                "title_length": int(row.title_length), "description_missing": bool(row.description_missing),
                "image_missing": bool(row.image_missing), "language": row.language,
                "prdtypecode": int(row.predicted_class), "confidence": float(row.confidence),
            }) + "\n")


def with_missing(frame: pd.DataFrame, column: str, share: float, seed: int) -> pd.DataFrame:
    """A copy where a random share of the rows has `column` set to True."""
    frame = frame.copy()
    frame.loc[np.random.default_rng(seed).random(len(frame)) < share, column] = True
    return frame


def with_skewed_classes(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A copy where half the predictions go to three classes."""
    frame, rng = frame.copy(), np.random.default_rng(seed)
    rows = rng.random(len(frame)) < 0.5
    frame.loc[rows, "predicted_class"] = rng.choice(SKEWED_CLASSES, size=rows.sum())
    return frame


def combined_shift(english: pd.DataFrame, seed: int) -> pd.DataFrame:
    """English traffic with more missing images and descriptions, skewed classes and lower confidence."""
    shifted = with_missing(english, "image_missing", 0.3, seed=seed)
    shifted = with_missing(shifted, "description_missing", 0.5, seed=seed + 1)
    return with_skewed_classes(shifted, seed=seed + 2).assign(confidence=lambda frame: frame["confidence"] * 0.6)
