"""What the API serves: the current models and, during an A/B rollout, a candidate for a sticky share of products.

Each worker process holds one Deployment. It reloads when the rollout file changes (looked at, at
most every RAKUTEN_API_ROLLOUT_CHECK_SECONDS, by the next request) or on POST /admin/reload, so
every uvicorn worker follows the file without a restart. A prediction goes from the route to
Deployment.predict, then straight to the ProductClassifier of the variant that answers.
"""

import contextlib
import ctypes
import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rakuten_mm.categories import CATEGORY_NAMES, CODES
from rakuten_mm.features.images import ImageAspectRatioError, ImageTooLargeError, UnsupportedImageFormatError
from rakuten_mm.jsonfiles import file_fingerprint, read_json
from rakuten_mm.models.predictor import ProductClassifier, UnreadableImageError
from rakuten_mm.serving.config import IMAGE_FORMATS, Settings
from rakuten_mm.serving.metrics import ApiMetrics
from rakuten_mm.serving.prediction_log import PredictionLog
from rakuten_mm.serving.review import ReviewQueue, decide
from rakuten_mm.serving.rollout import (
    ReloadError, RolloutError, RolloutState, read_state, touch_or_create,
)
from rakuten_mm.serving.versions import (
    ModelsNotFoundError, ModelsVersion, check_models_dir, identify_models, models_fingerprint, same_folder,
)

log = logging.getLogger(__name__)
CURRENT, CANDIDATE = "current", "candidate"
TOP_K = 5
NO_IMAGE_NOTE = "no image: predicted from the text alone"
# What the public /status says about a failed reload: a code, never the error's text (it names files).
RELOAD_ERROR_CODES = ((RolloutError, "rollout_file_invalid"), (ModelsNotFoundError, "models_not_found"))
# A PNG or WebP larger than this decodes whole into hundreds of MB: one such decode per worker at a time.
LARGE_DECODE_PIXELS = 4_000_000
REJECTION_REASONS = ((UnsupportedImageFormatError, "unsupported_format"), (ImageTooLargeError, "too_many_pixels"),
                     (ImageAspectRatioError, "aspect_ratio"))


class DecodeBudgetError(ImageTooLargeError):
    """The request's PNG and WebP images declare more pixels in all than RAKUTEN_API_MAX_REQUEST_IMAGE_PIXELS."""


class ProductImageError(ValueError):
    """An image of a request was refused; row says which product of the request."""

    def __init__(self, row: int, error: Exception):
        super().__init__(str(error))
        self.row = row
        self.error = error


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


def full_decode_pixels(image_bytes: bytes | None) -> int:
    """Pixels a PNG or WebP header declares (decoded whole); 0 for JPEG (reduced while decoding) and the rest."""
    if not image_bytes:
        return 0
    try:
        with Image.open(io.BytesIO(image_bytes), formats=("PNG", "WEBP")) as image:
            return image.width * image.height
    except Exception:  # not a PNG or WebP header: prepare_product decides what it is
        return 0


# glibc's malloc_trim (None elsewhere): a freed large decode stays in its thread's malloc arena,
# about 340 MB for a 40 MP PNG, and with many threads in the pool those arenas add up (a 128-image
# batch sent twice at once peaked at 792 MB against 487 MB for one on CI).
MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)


@contextlib.contextmanager
def one_large_decode(lock: threading.Lock):
    """Hold the worker's large-decode lock; on leaving, give the freed decode back to the system (~12 ms)."""
    with lock:
        try:
            yield
        finally:
            if MALLOC_TRIM is not None:
                MALLOC_TRIM(0)


class DecodeBudget:
    """The PNG and WebP pixels one request may still decode, and the worker's one-large-decode-at-a-time lock."""

    def __init__(self, max_pixels: int, large_decode: threading.Lock):
        self.left, self.large_decode = max_pixels, large_decode

    def take(self, image_bytes: bytes | None) -> contextlib.AbstractContextManager | None:
        """The lock to hold while decoding this image (None: small enough); DecodeBudgetError past the budget."""
        pixels = full_decode_pixels(image_bytes)
        if pixels > self.left:
            raise DecodeBudgetError(f"image of {pixels} pixels is over what is left of the request's "
                                    f"budget of PNG/WebP pixels ({self.left})")
        self.left -= pixels
        return one_large_decode(self.large_decode) if pixels > LARGE_DECODE_PIXELS else None


def reload_error_code(error: Exception) -> str:
    """A short code, free of paths and messages, for why a reload failed."""
    return next((code for kind, code in RELOAD_ERROR_CODES if isinstance(error, kind)), "models_not_loadable")


def rejection_reason(error: Exception) -> str:
    """The metrics label of a refused image: unsupported_format, too_many_pixels, aspect_ratio or corrupt."""
    return next((reason for kind, reason in REJECTION_REASONS if isinstance(error, kind)), "corrupt")


def routing_key(product: ProductInput) -> str:
    """What identifies a product for routing: productid, else product_identifier, else its title."""
    if product.productid is not None:
        return f"productid:{product.productid}"
    if product.product_identifier:
        return f"product_identifier:{product.product_identifier}"
    return f"designation:{product.designation.strip()}"


def traffic_bucket(product: ProductInput) -> float:
    """A number in [0, 1) fixed by the product's routing key, the same in every worker and every run."""
    # A stable hash (not Python's salted hash()): all workers and restarts route a product alike.
    digest = hashlib.sha256(routing_key(product).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def class_probability(code_index: int, probability: float) -> dict:
    """A class index and probability as {prdtypecode, category, probability}."""
    code = CODES[code_index]
    return {"prdtypecode": code, "category": CATEGORY_NAMES[code], "probability": float(probability)}


def review_threshold(folder: Path) -> float | None:
    """The threshold train_fusion saved under "review" in fusion.json; None (all to review) without a valid one."""
    block = read_json(folder / "fusion" / "fusion.json").get("review")
    threshold = block.get("threshold") if isinstance(block, dict) else None
    if isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0.0 <= threshold <= 1.0:
        return float(threshold)
    if block is not None:
        log.warning("%s: fusion.json's review threshold %r is not a number in [0, 1]: every product goes to "
                    "review", folder, threshold)
    return None


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


@dataclass(frozen=True)
class LoadedModels:
    """One models folder loaded once: its classifier, its version and the file stamps it was loaded from."""

    folder: Path
    classifier: ProductClassifier
    identity: ModelsVersion
    fingerprint: tuple
    # The top-1 fused probability from which a product is filed automatically; None: all go to review.
    threshold: float | None = None

    @property
    def version(self) -> str:
        """The short version id of the loaded models."""
        return self.identity.version

    @property
    def model_outs(self) -> dict[str, str]:
        """md5 of each part of the loaded models (dvc.lock's, or of the files)."""
        return self.identity.outs


def load_models(folder: Path, settings: Settings, classifier_factory: Callable[[Path], ProductClassifier]
                ) -> LoadedModels:
    """Load a models folder and warm it up, so that no request pays for tracing."""
    check_models_dir(folder)
    started = time.perf_counter()
    # Taken before loading: a file rewritten during the load makes the next check reload again.
    fingerprint = models_fingerprint(folder)
    identity = identify_models(folder, settings.models_dir, settings.dvc_lock)
    threshold = review_threshold(folder)
    classifier = classifier_factory(folder)
    classifier.warm_up()
    log.info("models loaded from %s in %.1f s, version %s (from %s), review threshold %s", folder,
             time.perf_counter() - started, identity.version, identity.source, threshold)
    return LoadedModels(folder, classifier, identity, fingerprint, threshold)


@dataclass(frozen=True)
class Served:
    """One snapshot of the served models, replaced whole on reload (requests keep the one they started with)."""

    current: LoadedModels
    candidate: LoadedModels | None
    candidate_share: float
    state: RolloutState

    def variant_of(self, product: ProductInput) -> str:
        """current or candidate: the candidate gets the products whose bucket falls below its share."""
        # Raising the share keeps the products already on the candidate there (buckets are fixed).
        if self.candidate is not None and traffic_bucket(product) < self.candidate_share:
            return CANDIDATE
        return CURRENT

    def models(self, variant: str) -> LoadedModels:
        """The models of a variant."""
        return self.candidate if variant == CANDIDATE else self.current

    def versions(self) -> dict[str, tuple[str, dict[str, str]]]:
        """{variant: (version, outs)} of the loaded models."""
        loaded = {CURRENT: self.current, CANDIDATE: self.candidate}
        return {variant: (m.version, m.model_outs) for variant, m in loaded.items() if m is not None}


def describe_prediction(product: ProductInput, probabilities: np.ndarray, has_image: bool, models: LoadedModels,
                        variant: str, include_probabilities: bool) -> dict:
    """The API's view of one product's fused probabilities, with what to do with it."""
    # Stable sort: ties keep code order, so the top class is argmax's, as in evaluate.
    ranked = np.argsort(-probabilities, kind="stable")[:TOP_K]
    top_probability = float(probabilities[ranked[0]])
    return {
        **class_probability(int(ranked[0]), probabilities[ranked[0]]),
        "top5": [class_probability(int(i), probabilities[i]) for i in ranked],
        "modalities": ["text", "image"] if has_image else ["text"],
        "note": None if has_image else product.image_note or NO_IMAGE_NOTE,
        "productid": product.productid,
        "imageid": product.imageid,
        "product_identifier": product.product_identifier,
        "model_version": models.version,
        "probabilities": ([class_probability(i, p) for i, p in enumerate(probabilities)]
                          if include_probabilities else None),
        "variant": variant,
        "decision": decide(top_probability, models.threshold),
        "threshold": models.threshold,
    }


class Deployment:
    """The served models of this worker process, their reloads, and predictions routed between variants."""

    def __init__(self, settings: Settings, metrics: ApiMetrics, prediction_log: PredictionLog,
                 classifier_factory: Callable[[Path], ProductClassifier] = ProductClassifier,
                 review_queue: ReviewQueue | None = None):
        self.settings = settings
        self.metrics = metrics
        self.prediction_log = prediction_log
        self.review_queue = review_queue or ReviewQueue(None)
        self.classifier_factory = classifier_factory
        self.reload_error: str | None = None
        self.served: Served | None = None
        self._seen_fingerprint = None
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()
        self._large_decode = threading.Lock()
        with self._lock:
            self._reload_locked(reuse=False, strict=True)  # a broken setup stops the start

    def predict(self, products: Sequence[ProductInput], endpoint: str,
                include_probabilities: bool = False) -> list[dict]:
        """One prediction per product, in order, each from its variant's models, queued for the prediction log."""
        served = self.served
        groups: dict[str, list[int]] = {}
        for row, product in enumerate(products):
            groups.setdefault(served.variant_of(product), []).append(row)
        # Every image is checked before any model runs: a refused one fails a /predict request, counting
        # nothing; in a batch it makes its product text-only.
        budget = DecodeBudget(self.settings.max_request_image_pixels, self._large_decode)
        inputs = {variant: [self._prepare(served.models(variant), products[row], row, budget, endpoint == "batch")
                            for row in rows] for variant, rows in groups.items()}
        results: list[dict | None] = [None] * len(products)
        for variant, rows in groups.items():
            models = served.models(variant)
            titles, descriptions, images, has_image = zip(*inputs[variant], strict=True)
            has_image = np.array(has_image, dtype=bool)
            started = time.perf_counter()
            fused = models.classifier.predict_proba(titles, descriptions, np.stack(images), has_image)["fused"]
            seconds = time.perf_counter() - started
            for row, probabilities, image in zip(rows, fused, has_image, strict=True):
                results[row] = describe_prediction(products[row], probabilities, image, models, variant,
                                                   include_probabilities)
            self.metrics.record_predictions(endpoint, models.version, [results[row] for row in rows], has_image,
                                            seconds)
        self.prediction_log.record(products, results)
        self.review_queue.record(products, results)
        return results

    def _prepare(self, models: LoadedModels, product: ProductInput, row: int, budget: DecodeBudget,
                 image_fallback: bool) -> tuple:
        """Model inputs of one product, with this API's image limits; ProductImageError names a refused image.

        image_fallback: a refused image makes its product text-only, with a note saying why, as
        make_dataset treats an unreadable image, instead of failing the request.
        """
        limits = dict(max_image_pixels=self.settings.max_image_pixels, image_formats=IMAGE_FORMATS,
                      max_image_aspect_ratio=self.settings.max_image_aspect_ratio)
        try:
            with budget.take(product.image_bytes) or contextlib.nullcontext():
                return models.classifier.prepare_product(product.designation, product.description,
                                                         product.image_bytes, **limits)
        except UnreadableImageError as error:
            self.metrics.rejected_images.labels(rejection_reason(error)).inc()
            if not image_fallback:
                raise ProductImageError(row, error) from error
            product.image_bytes = None
            product.image_note = f"image not used ({error}): predicted from the text alone"
            return models.classifier.prepare_product(product.designation, product.description, None, **limits)

    def needs_refresh(self) -> bool:
        """Whether the rollout file changed since the last load (one stat, at most every check interval)."""
        now = time.monotonic()
        if now - self._checked_at < self.settings.rollout_check_seconds:
            return False
        self._checked_at = now
        return file_fingerprint(self.settings.rollout_file) != self._seen_fingerprint

    def refresh(self) -> None:
        """Reload what the changed rollout file names; one request of this worker does it, the others go on."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if file_fingerprint(self.settings.rollout_file) != self._seen_fingerprint:
                self._reload_locked(reuse=True)
        except ReloadError:
            pass  # logged, and shown by /status as reload_error
        finally:
            self._lock.release()

    def reload(self, reuse: bool = False) -> tuple[Served, bool]:
        """Load the served folders from disk (reuse: not those unchanged), then ask the other workers to reload too."""
        with self._lock:
            served = self._reload_locked(reuse)
            # Other workers only see the file: touching it makes them reload at their next check.
            try:
                before, after = touch_or_create(self.settings.rollout_file, self.settings.models_dir)
            except OSError as error:
                log.warning("cannot touch %s, other workers keep their models: %s", self.settings.rollout_file, error)
                return served, False
            # Our own touch is no news to this worker, unless the file changed between our read and it.
            if before == self._seen_fingerprint:
                self._seen_fingerprint = after
        return served, True

    def _load(self, folder: Path, reuse: bool) -> LoadedModels:
        """The models of a folder: the loaded ones when reuse allows and nothing changed on disk, else loaded anew."""
        if reuse and self.served is not None:
            for loaded in (self.served.current, self.served.candidate):
                if (loaded is not None and same_folder(loaded.folder, folder)
                        and loaded.fingerprint == models_fingerprint(folder)):
                    return loaded  # a promotion reuses the candidate: no load, no pause
        return load_models(folder, self.settings, self.classifier_factory)

    def _reload_locked(self, reuse: bool, strict: bool = False) -> Served:
        """Read the rollout file and load what it names (caller holds the lock); keep the old models on failure."""
        path = self.settings.rollout_file
        # Taken before reading: a change made meanwhile is seen (and loaded) by a later check.
        fingerprint = file_fingerprint(path)
        try:
            state = read_state(path, self.settings.models_dir)
            current = self._load(Path(state.current), reuse)
            candidate = self._load(Path(state.candidate), reuse) if state.candidate else None
        # Any failure (bad file, missing folder, a Keras file that will not load): keep the old models.
        except Exception as error:
            self._seen_fingerprint = fingerprint  # retried when the file changes again, not on every request
            self.reload_error = reload_error_code(error)
            self.metrics.reloads.labels("error").inc()
            log.error("cannot load the models named by %s, serving the previous ones (%s): %s: %s",
                      path, self.reload_error, type(error).__name__, error)
            if strict:
                raise
            raise ReloadError(f"{type(error).__name__}: {error}") from error
        served = Served(current, candidate, state.candidate_share if candidate else 0.0, state)
        self.served, self._seen_fingerprint, self.reload_error = served, fingerprint, None
        self.metrics.set_served(served.versions(), served.candidate_share)
        self.metrics.reloads.labels("ok").inc()
        log.info("serving %s (%s)%s", state.current, current.version,
                 f", candidate {state.candidate} ({candidate.version}) for {served.candidate_share:.0%}"
                 if candidate else "")
        return served
