"""Prometheus metrics: HTTP metrics per route (instrumentator), model metrics per version, drift scores.

Anonymous scrapes get the operational series only (HTTP, process, rate-limit store); the model and
drift series go to callers with RAKUTEN_API_METRICS_TOKEN (Prometheus, monitoring/prometheus.yml).
"""

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator

from rakuten_mm.jsonfiles import read_file
from rakuten_mm.serving.versions import MODEL_PARTS

log = logging.getLogger(__name__)
# Model inference is milliseconds on CPU; the instrumentator's default buckets start at 100 ms.
INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# What anyone may scrape: how the service runs, nothing about products, predictions or data drift.
PUBLIC_PREFIXES = ("http_", "process_", "python_", "rakuten_rate_limit_")


class ApiMetrics:
    """The API's own metrics: model latency, predicted classes, images refused, what is served, the rate-limit store."""

    def __init__(self, registry: CollectorRegistry):
        self.inference_seconds = Histogram(
            "rakuten_model_inference_seconds", "Model time (preprocessing excluded) per call, by endpoint and version",
            ["endpoint", "model_version"], buckets=INFERENCE_BUCKETS, registry=registry)
        self.predictions = Counter(
            "rakuten_predictions", "Products predicted, by predicted prdtypecode and model version",
            ["prdtypecode", "model_version"], registry=registry)
        self.decisions = Counter(
            "rakuten_decisions", "Products filed automatically (auto) or sent to review, by model version",
            ["decision", "model_version"], registry=registry)
        self.without_image = Counter(
            "rakuten_predictions_without_image", "Products predicted from text alone (no image sent)",
            ["endpoint", "model_version"], registry=registry)
        self.rejected_images = Counter(
            "rakuten_rejected_images", "Uploaded images refused, by reason", ["reason"], registry=registry)
        # Gauges set to 1, not an Info: Info does not work in prometheus_client's multiprocess mode.
        self.model_info = Gauge(
            "rakuten_model_info", "1 per served model: version (md5 of its outs), variant and part md5s",
            ["version", "variant", *MODEL_PARTS], registry=registry, multiprocess_mode="max")
        self.candidate_share = Gauge(
            "rakuten_model_candidate_share", "Share of products routed to the candidate model (0: none)",
            registry=registry, multiprocess_mode="mostrecent")
        self.reloads = Counter(
            "rakuten_model_reloads", "Model reloads (rollout file change or POST /admin/reload), by result",
            ["result"], registry=registry)
        self.rate_limit_store_degraded = Gauge(
            "rakuten_rate_limit_store_degraded",
            "1 while the shared rate-limit store is unreachable and limits are counted per worker process",
            registry=registry, multiprocess_mode="livemax")
        self.rate_limit_store_degraded.set(0)
        self._info_labels: set[tuple[str, ...]] = set()

    def set_served(self, served: dict[str, tuple[str, dict[str, str]]], candidate_share: float) -> None:
        """Publish which models are served: {variant: (version, outs)}; models no longer served drop to 0."""
        labels = {(version, variant, *(outs.get(f"models/{part}", "") for part in MODEL_PARTS))
                  for variant, (version, outs) in served.items()}
        for gone in self._info_labels - labels:
            self.model_info.labels(*gone).set(0)
            # Multiprocess mode cannot remove a series (it lives on in the worker's file): it stays at 0.
            if MULTIPROCESS_ENV not in os.environ:
                self.model_info.remove(*gone)
        for current in labels:
            self.model_info.labels(*current).set(1)
        self._info_labels = labels
        self.candidate_share.set(candidate_share)

    def record_predictions(self, endpoint: str, version: str, results: Iterable[dict], has_image: Iterable[bool],
                           seconds: float) -> None:
        """Count one model call of this version, the products it predicted and the decisions it made."""
        self.inference_seconds.labels(endpoint, version).observe(seconds)
        for result, image in zip(results, has_image, strict=True):
            self.predictions.labels(str(result["prdtypecode"]), version).inc()
            self.decisions.labels(result["decision"], version).inc()
            if not image:
                self.without_image.labels(endpoint, version).inc()


def read_drift_report(path: Path) -> dict | None:
    """The drift report's content, None when the file is absent or not a readable report."""
    report = read_file(path)
    if report is None:
        return None
    if not isinstance(report, dict) or not isinstance(report.get("features"), dict):
        log.warning("drift report %s has no 'features' mapping", path)
        return None
    return report


def report_timestamp(report: dict) -> float | None:
    """generated_at as Unix seconds, None when absent or not ISO-8601."""
    try:
        return datetime.fromisoformat(str(report["generated_at"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return None


class DriftReportCollector(Collector):
    """Drift scores read from the drift report at scrape time (the monitor command rewrites it)."""

    def __init__(self, path: Path):
        self.path = path

    def describe(self) -> list[Metric]:
        """Nothing up front: the series depend on the file at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """rakuten_drift_score{feature}, _threshold{feature}, _detected, _production_samples, the report's time
        and rakuten_review_share."""
        report = read_drift_report(self.path)
        if report is None:
            return
        score = GaugeMetricFamily("rakuten_drift_score", "Drift test statistic per feature (PSI or chi2)",
                                  labels=["feature"])
        threshold = GaugeMetricFamily("rakuten_drift_threshold", "Score above which a feature drifted",
                                      labels=["feature"])
        for feature, result in sorted(report["features"].items()):
            if isinstance(result, dict) and isinstance(result.get("score"), int | float):
                score.add_metric([feature], float(result["score"]))
                if isinstance(result.get("threshold"), int | float):
                    threshold.add_metric([feature], float(result["threshold"]))
        yield score
        yield threshold
        yield GaugeMetricFamily("rakuten_drift_detected", "1 when the drift report found drift, else 0",
                                value=float(bool(report.get("drift_detected"))))
        if isinstance(report.get("review_share"), int | float):
            yield GaugeMetricFamily("rakuten_review_share", "Share of the compared predictions sent to review",
                                    value=float(report["review_share"]))
        if isinstance(report.get("n_production"), int | float):
            yield GaugeMetricFamily("rakuten_drift_production_samples", "Production predictions the report compared",
                                    value=float(report["n_production"]))
        generated = report_timestamp(report)
        if generated is not None:
            yield GaugeMetricFamily("rakuten_drift_report_timestamp_seconds",
                                    "When the drift report was generated (Unix time)", value=generated)


class PublicSeries:
    """The operational series of a registry (PUBLIC_PREFIXES), for anonymous scrapes."""

    def __init__(self, source: CollectorRegistry):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        """The source's metric families whose names are public."""
        return (metric for metric in self.source.collect() if metric.name.startswith(PUBLIC_PREFIXES))


def scrape_registry(registry: CollectorRegistry, drift: Collector) -> CollectorRegistry:
    """Every series of this process's registry, or of every worker's files in multiprocess mode."""
    if MULTIPROCESS_ENV not in os.environ:
        return registry
    # Each scrape reads all workers' files afresh; the drift series come from the report, once.
    merged = CollectorRegistry()
    MultiProcessCollector(merged)
    merged.register(drift)
    return merged


class Exposition:
    """The text /metrics answers: all series for a trusted caller, the public ones for anyone else."""

    def __init__(self, registry: CollectorRegistry, drift_report: Path):
        self.registry = registry
        self.drift = DriftReportCollector(drift_report)
        registry.register(self.drift)

    def text(self, trusted: bool) -> bytes:
        """The Prometheus text format of the series this caller may see."""
        everything = scrape_registry(self.registry, self.drift)
        return generate_latest(everything if trusted else PublicSeries(everything))


def instrument_http(app: FastAPI, registry: CollectorRegistry) -> None:
    """Requests, latency histograms and exact status codes per route."""
    instrumentator = Instrumentator(
        should_group_status_codes=False, excluded_handlers=["/metrics"], registry=registry)
    instrumentator.instrument(app, latency_lowr_buckets=HTTP_BUCKETS)
