"""The bridge between HTTP and the package's ProductClassifier: load once, prepare, predict, describe."""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rakuten_mm.categories import CATEGORY_NAMES, CODES
from rakuten_mm.features.images import ImageAspectRatioError, ImageTooLargeError, UnsupportedImageFormatError
from rakuten_mm.models.predictor import ProductClassifier, UnreadableImageError
from rakuten_mm.serving.config import IMAGE_FORMATS, Settings
from rakuten_mm.serving.monitoring import ModelMetrics
from rakuten_mm.serving.versions import check_models_dir, identify_models, models_fingerprint

log = logging.getLogger(__name__)
TOP_K = 5
NO_IMAGE_NOTE = "no image: predicted from the text alone"
REJECTION_REASONS = ((UnsupportedImageFormatError, "unsupported_format"), (ImageTooLargeError, "too_many_pixels"),
                     (ImageAspectRatioError, "aspect_ratio"))


@dataclass
class ProductInput:
    """One product as received: raw text fields, optional image bytes and ids to echo back."""

    designation: str
    description: str | None = None
    image_bytes: bytes | None = None
    productid: int | None = None
    imageid: int | None = None
    product_identifier: str | None = None
    # Set when the image was refused and the product predicted from its text (batches), saying why.
    image_note: str | None = None


def rejection_reason(error: Exception) -> str:
    """The metrics label of a refused image: unsupported_format, too_many_pixels, aspect_ratio or corrupt."""
    return next((reason for kind, reason in REJECTION_REASONS if isinstance(error, kind)), "corrupt")


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
    """One models folder loaded once, the version it serves, and predictions as API dictionaries."""

    def __init__(self, models_dir: Path, settings: Settings, metrics: ModelMetrics,
                 classifier_factory: Callable[[Path], ProductClassifier] = ProductClassifier):
        check_models_dir(models_dir)
        self.models_dir = models_dir
        self.settings = settings
        self.metrics = metrics
        started = time.perf_counter()
        # Taken before loading: a file rewritten during the load makes the next check reload again.
        self.fingerprint = models_fingerprint(models_dir)
        self.identity = identify_models(models_dir, settings.models_dir, settings.dvc_lock)
        self.classifier = classifier_factory(models_dir)
        self.classifier.warm_up()
        log.info("models loaded from %s in %.1f s, version %s (from %s)", models_dir,
                 time.perf_counter() - started, self.version, self.identity.source)

    @property
    def version(self) -> str:
        """The short version id of the loaded models."""
        return self.identity.version

    @property
    def model_outs(self) -> dict[str, str]:
        """md5 of each part of the loaded models (dvc.lock's, or of the files)."""
        return self.identity.outs

    def prepare(self, products: Sequence[ProductInput], image_fallback: bool = False) -> list[tuple]:
        """Clean and preprocess each product through the package; ProductImageError names a bad image.

        image_fallback: a refused image makes its product text-only, with a note saying why, as
        make_dataset treats an unreadable image, instead of failing the request.
        """
        prepared = []
        for row, product in enumerate(products):
            try:
                prepared.append(self._prepare_one(product))
            except UnreadableImageError as error:
                if not image_fallback:
                    raise ProductImageError(row, error) from error
                self.metrics.rejected_images.labels(rejection_reason(error)).inc()
                product.image_bytes = None
                product.image_note = f"image not used ({error}): predicted from the text alone"
                prepared.append(self._prepare_one(product))
        return prepared

    def _prepare_one(self, product: ProductInput) -> tuple:
        """Model inputs of one product, with this API's image limits."""
        return self.classifier.prepare_product(
            product.designation, product.description, product.image_bytes,
            max_image_pixels=self.settings.max_image_pixels, image_formats=IMAGE_FORMATS,
            max_image_aspect_ratio=self.settings.max_image_aspect_ratio)

    def predict(self, products: Sequence[ProductInput], endpoint: str,
                include_probabilities: bool = False) -> list[dict]:
        """One prediction dictionary per product, in order."""
        return self.predict_prepared(products, self.prepare(products), endpoint, include_probabilities)

    def predict_prepared(self, products: Sequence[ProductInput], prepared: list[tuple], endpoint: str,
                         include_probabilities: bool = False) -> list[dict]:
        """Predictions for products that `prepare` already turned into model inputs."""
        titles, descriptions, images, has_image = zip(*prepared, strict=True)
        has_image = np.array(has_image, dtype=bool)
        started = time.perf_counter()
        fused = self.classifier.predict_proba(titles, descriptions, np.stack(images), has_image)["fused"]
        seconds = time.perf_counter() - started
        results = [self.describe_prediction(product, probabilities, image, include_probabilities)
                   for product, probabilities, image in zip(products, fused, has_image, strict=True)]
        self.metrics.record_predictions(endpoint, self.version, [r["prdtypecode"] for r in results],
                                        has_image, seconds)
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
            "note": None if has_image else product.image_note or NO_IMAGE_NOTE,
            "productid": product.productid,
            "imageid": product.imageid,
            "product_identifier": product.product_identifier,
            "model_version": self.version,
            "probabilities": ([class_probability(i, p) for i, p in enumerate(probabilities)]
                              if include_probabilities else None),
        }
