"""Prometheus metrics: HTTP metrics per route (instrumentator) and model metrics, on one registry."""

from collections.abc import Iterable

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_fastapi_instrumentator import Instrumentator

# Model inference is milliseconds on CPU; the instrumentator's default buckets start at 100 ms.
INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ModelMetrics:
    """The model's own metrics: inference latency, predicted classes, products without image, version."""

    def __init__(self, registry: CollectorRegistry):
        self.inference_seconds = Histogram(
            "rakuten_model_inference_seconds", "Model time (preprocessing excluded) per call, by endpoint",
            ["endpoint"], buckets=INFERENCE_BUCKETS, registry=registry)
        self.predictions = Counter(
            "rakuten_predictions", "Products predicted, by predicted prdtypecode", ["prdtypecode"], registry=registry)
        self.without_image = Counter(
            "rakuten_predictions_without_image", "Products predicted from text alone (no image sent)",
            ["endpoint"], registry=registry)
        self.rejected_images = Counter(
            "rakuten_rejected_images", "Uploaded images refused, by reason", ["reason"], registry=registry)
        # A gauge set to 1, not an Info: Info does not work in prometheus_client's multiprocess mode.
        self.model_info = Gauge(
            "rakuten_model_info", "The served model version (md5 of the model outs in dvc.lock)",
            ["version", "text", "image", "fusion"], registry=registry, multiprocess_mode="max")

    def set_model_version(self, version: str, outs: dict[str, str]) -> None:
        """Publish which models are served."""
        self.model_info.labels(version, outs.get("models/text", ""), outs.get("models/image", ""),
                               outs.get("models/fusion", "")).set(1)

    def record_predictions(self, endpoint: str, codes: Iterable[int], has_image: Iterable[bool], seconds: float) -> None:
        """Count one model call and the products it predicted."""
        self.inference_seconds.labels(endpoint).observe(seconds)
        for code, image in zip(codes, has_image, strict=True):
            self.predictions.labels(str(code)).inc()
            if not image:
                self.without_image.labels(endpoint).inc()


def instrument_http(app: FastAPI, registry: CollectorRegistry) -> None:
    """Requests, latency histograms and exact status codes per route, exposed at GET /metrics."""
    instrumentator = Instrumentator(
        should_group_status_codes=False, excluded_handlers=["/metrics"], registry=registry)
    instrumentator.instrument(app, latency_lowr_buckets=HTTP_BUCKETS)
    instrumentator.expose(app, endpoint="/metrics", include_in_schema=True, tags=["monitoring"],
                          summary="Prometheus metrics")
