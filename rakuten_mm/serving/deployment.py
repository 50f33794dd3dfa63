"""What the API serves: the current models and, during an A/B rollout, a candidate for a sticky share of products.

Each worker process holds one Deployment. It reloads when the rollout file changes (looked at, at
most every RAKUTEN_API_ROLLOUT_CHECK_SECONDS, by the next request) or on POST /admin/reload, so
every uvicorn worker follows the file without a restart.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rakuten_mm.models.predictor import ProductClassifier
from rakuten_mm.serving.config import Settings
from rakuten_mm.serving.monitoring import ModelMetrics
from rakuten_mm.serving.prediction_log import PredictionLog
from rakuten_mm.serving.rollout_state import (
    RolloutError, RolloutState, file_fingerprint, read_state, touch_or_create,
)
from rakuten_mm.serving.service import PredictionService, ProductImageError, ProductInput
from rakuten_mm.serving.versions import ModelsNotFoundError, models_fingerprint, same_folder

log = logging.getLogger(__name__)
CURRENT, CANDIDATE = "current", "candidate"
# What the public /status says about a failed reload: a code, never the error's text (it names files).
RELOAD_ERROR_CODES = ((RolloutError, "rollout_file_invalid"), (ModelsNotFoundError, "models_not_found"))


class ReloadError(RuntimeError):
    """The rollout file or a models folder it names could not be loaded; the previous models are still served."""


def reload_error_code(error: Exception) -> str:
    """A short code, free of paths and messages, for why a reload failed."""
    return next((code for kind, code in RELOAD_ERROR_CODES if isinstance(error, kind)), "models_not_loadable")


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


@dataclass(frozen=True)
class Served:
    """One snapshot of the served models, replaced whole on reload (requests keep the one they started with)."""

    current: PredictionService
    candidate: PredictionService | None
    candidate_share: float
    state: RolloutState

    def variant_of(self, product: ProductInput) -> str:
        """current or candidate: the candidate gets the products whose bucket falls below its share."""
        # Raising the share keeps the products already on the candidate there (buckets are fixed).
        if self.candidate is not None and traffic_bucket(product) < self.candidate_share:
            return CANDIDATE
        return CURRENT

    def service(self, variant: str) -> PredictionService:
        """The models of a variant."""
        return self.candidate if variant == CANDIDATE else self.current

    def versions(self) -> dict[str, tuple[str, dict[str, str]]]:
        """{variant: (version, outs)} of the loaded models."""
        loaded = {CURRENT: self.current, CANDIDATE: self.candidate}
        return {variant: (s.version, s.model_outs) for variant, s in loaded.items() if s is not None}


class Deployment:
    """The served models of this worker process, their reloads, and predictions routed between variants."""

    def __init__(self, settings: Settings, metrics: ModelMetrics, prediction_log: PredictionLog,
                 classifier_factory: Callable[[Path], ProductClassifier] = ProductClassifier):
        self.settings = settings
        self.metrics = metrics
        self.prediction_log = prediction_log
        self.classifier_factory = classifier_factory
        self.reload_error: str | None = None
        self._served: Served | None = None
        self._seen_fingerprint = None
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()
        with self._lock:
            self._reload_locked(reuse=False, strict=True)  # a broken setup stops the start

    @property
    def served(self) -> Served:
        """The models serving requests now."""
        return self._served

    def load_service(self, folder: Path, reuse: bool) -> PredictionService:
        """The models of a folder: the loaded ones when reuse allows and nothing changed on disk, else loaded anew."""
        if reuse and self._served is not None:
            for loaded in (self._served.current, self._served.candidate):
                if (loaded is not None and same_folder(loaded.models_dir, folder)
                        and loaded.fingerprint == models_fingerprint(folder)):
                    return loaded  # a promotion reuses the candidate: no load, no pause
        return PredictionService(folder, self.settings, self.metrics, self.classifier_factory)

    def _reload_locked(self, reuse: bool, strict: bool = False) -> Served:
        """Read the rollout file and load what it names (caller holds the lock); keep the old models on failure."""
        path = self.settings.rollout_file
        # Taken before reading: a change made meanwhile is seen (and loaded) by a later check.
        fingerprint = file_fingerprint(path)
        try:
            state = read_state(path, self.settings.models_dir)
            current = self.load_service(Path(state.current), reuse)
            candidate = self.load_service(Path(state.candidate), reuse) if state.candidate else None
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
        self._served, self._seen_fingerprint, self.reload_error = served, fingerprint, None
        self.metrics.set_served(served.versions(), served.candidate_share)
        self.metrics.reloads.labels("ok").inc()
        log.info("serving %s (%s)%s", state.current, current.version,
                 f", candidate {state.candidate} ({candidate.version}) for {served.candidate_share:.0%}"
                 if candidate else "")
        return served

    def refresh_if_changed(self) -> None:
        """Reload when the rollout file changed since the last load; cheap (one stat) and rate-limited."""
        now = time.monotonic()
        if now - self._checked_at < self.settings.rollout_check_seconds:
            return
        self._checked_at = now
        if file_fingerprint(self.settings.rollout_file) == self._seen_fingerprint:
            return
        # One request of this worker reloads; the others go on with the models they have meanwhile.
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

    def predict(self, products: Sequence[ProductInput], endpoint: str,
                include_probabilities: bool = False) -> list[dict]:
        """One prediction per product, in order, each from its variant's models, logged to the prediction log."""
        served = self.served
        groups: dict[str, list[int]] = {}
        for row, product in enumerate(products):
            groups.setdefault(served.variant_of(product), []).append(row)
        # Every image is checked before any model runs: a refused one fails a /predict request, counting
        # nothing; in a batch it makes its product text-only.
        prepared = {variant: self._prepare(served.service(variant), products, rows, endpoint == "batch")
                    for variant, rows in groups.items()}
        results: list[dict | None] = [None] * len(products)
        for variant, rows in groups.items():
            group = [products[row] for row in rows]
            answers = served.service(variant).predict_prepared(group, prepared[variant], endpoint,
                                                               include_probabilities)
            for row, answer in zip(rows, answers, strict=True):
                results[row] = {**answer, "variant": variant}
        self.prediction_log.record(products, results)
        return results

    @staticmethod
    def _prepare(service: PredictionService, products: Sequence[ProductInput], rows: list[int],
                 image_fallback: bool) -> list[tuple]:
        """Model inputs for some rows of a request; a refused image names its row in the whole request."""
        try:
            return service.prepare([products[row] for row in rows], image_fallback)
        except ProductImageError as error:
            raise ProductImageError(rows[error.row], error.error) from error
