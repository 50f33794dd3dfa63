"""The bridge between HTTP and the package's ProductClassifier: load once, prepare, predict, describe."""

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from rakuten_mm.categories import CATEGORY_NAMES, CODES
from rakuten_mm.models.predictor import ProductClassifier, UnreadableImageError
from rakuten_mm.serving.config import IMAGE_FORMATS, Settings
from rakuten_mm.serving.monitoring import ModelMetrics

log = logging.getLogger(__name__)
MODEL_STAGES = ("train_text", "train_image", "train_fusion")
MODEL_FILES = ("text/model.keras", "text/preprocessing.json", "image/model.keras",
               "image/preprocessing.json", "fusion/fusion.json")
TOP_K = 5
NO_IMAGE_NOTE = "no image: predicted from the text alone"


class ModelsNotFoundError(FileNotFoundError):
    """The models folder lacks a file the API needs."""


@dataclass
class ProductInput:
    """One product as received: raw text fields, optional image bytes and ids to echo back."""

    designation: str
    description: str | None = None
    image_bytes: bytes | None = None
    productid: int | None = None
    imageid: int | None = None
    product_identifier: str | None = None


def read_model_outs(dvc_lock: Path) -> dict[str, str]:
    """md5 of each models/ out of the training stages in dvc.lock (empty without a lock)."""
    if not dvc_lock.is_file():
        return {}
    stages = (yaml.safe_load(dvc_lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {
        out["path"]: out["md5"]
        for stage in MODEL_STAGES
        for out in stages.get(stage, {}).get("outs", [])
        if out["path"].startswith("models/") and "md5" in out
    }


def model_version(outs: dict[str, str]) -> str:
    """A short id of the served models: md5 over the sorted out hashes, or "unknown"."""
    if not outs:
        return "unknown"
    joined = "\n".join(f"{path} {md5}" for path, md5 in sorted(outs.items()))
    return hashlib.md5(joined.encode()).hexdigest()[:12]


def check_models_dir(models_dir: Path) -> None:
    """Fail with a clear message when a model file is missing."""
    missing = [name for name in MODEL_FILES if not (models_dir / name).is_file()]
    if missing:
        raise ModelsNotFoundError(
            f"{models_dir.resolve()} lacks {', '.join(missing)}: run `make run` (dvc repro) first, "
            "or point RAKUTEN_API_MODELS_DIR at a models folder")


def class_probability(code_index: int, probability: float) -> dict:
    """A class index and probability as {prdtypecode, category, probability}."""
    code = CODES[code_index]
    return {"prdtypecode": code, "category": CATEGORY_NAMES[code], "probability": float(probability)}


def configure_tensorflow_threads(threads: int) -> None:
    """Give TensorFlow `threads` threads per pool (0: its default), before it starts its runtime."""
    # The models are small: one thread per request avoids thread hand-offs, and uvicorn workers
    # and concurrent requests already keep the cores busy.
    if threads <= 0:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    # Raised once TensorFlow runs (e.g. a second app in the same test process): keep its setting.
    except RuntimeError:
        log.info("TensorFlow already initialised; keeping its thread settings")


class ProductImageError(ValueError):
    """An image of a request was refused; row says which product of a batch."""

    def __init__(self, row: int, error: Exception):
        super().__init__(str(error))
        self.row = row
        self.error = error


class PredictionService:
    """The classifier loaded once, the version it serves, and predictions as API dictionaries."""

    def __init__(self, settings: Settings, metrics: ModelMetrics,
                 classifier_factory: Callable[[Path], ProductClassifier] = ProductClassifier):
        check_models_dir(settings.models_dir)
        self.settings = settings
        self.metrics = metrics
        started = time.perf_counter()
        self.classifier = classifier_factory(settings.models_dir)
        self.classifier.warm_up()
        self.model_outs = read_model_outs(settings.dvc_lock)
        self.version = model_version(self.model_outs)
        metrics.set_model_version(self.version, self.model_outs)
        log.info("models loaded from %s in %.1f s, version %s", settings.models_dir,
                 time.perf_counter() - started, self.version)

    def prepare(self, products: Sequence[ProductInput]) -> list[tuple]:
        """Clean and preprocess each product through the package; ProductImageError names a bad image."""
        prepared = []
        for row, product in enumerate(products):
            try:
                prepared.append(self.classifier.prepare_product(
                    product.designation, product.description, product.image_bytes,
                    max_image_pixels=self.settings.max_image_pixels, image_formats=IMAGE_FORMATS))
            except UnreadableImageError as error:
                raise ProductImageError(row, error) from error
        return prepared

    def predict(self, products: Sequence[ProductInput], endpoint: str,
                include_probabilities: bool = False) -> list[dict]:
        """One prediction dictionary per product, in order."""
        titles, descriptions, images, has_image = zip(*self.prepare(products), strict=True)
        has_image = np.array(has_image, dtype=bool)
        started = time.perf_counter()
        fused = self.classifier.predict_proba(titles, descriptions, np.stack(images), has_image)["fused"]
        seconds = time.perf_counter() - started
        results = [self.describe_prediction(product, probabilities, image, include_probabilities)
                   for product, probabilities, image in zip(products, fused, has_image, strict=True)]
        self.metrics.record_predictions(endpoint, [r["prdtypecode"] for r in results], has_image, seconds)
        return results

    def describe_prediction(self, product: ProductInput, probabilities: np.ndarray, has_image: bool,
                 include_probabilities: bool) -> dict:
        """The API's view of one product's fused probabilities."""
        # Stable sort: ties keep code order, so the top class is argmax's, as in evaluate.
        ranked = np.argsort(-probabilities, kind="stable")[:TOP_K]
        return {
            **class_probability(int(ranked[0]), probabilities[ranked[0]]),
            "top5": [class_probability(int(i), probabilities[i]) for i in ranked],
            "modalities": ["text", "image"] if has_image else ["text"],
            "note": None if has_image else NO_IMAGE_NOTE,
            "productid": product.productid,
            "imageid": product.imageid,
            "product_identifier": product.product_identifier,
            "model_version": self.version,
            "probabilities": ([class_probability(i, p) for i, p in enumerate(probabilities)]
                              if include_probabilities else None),
        }
