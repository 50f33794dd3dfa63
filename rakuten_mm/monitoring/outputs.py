"""What the monitor writes: the drift report JSON, a Prometheus textfile and a PNG of the distributions."""

from datetime import datetime
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from rakuten_mm.jsonfiles import write_json

# Reference first, production second, in every panel.
COLORS = {"reference": "#4c72b0", "production": "#dd8452", "ok": "#55a868", "drifted": "#c44e52"}


def write_report(report: dict, path: str | Path) -> None:
    """Write the drift report (sorted keys, parent folders created)."""
    write_json(report, path)


def write_prometheus_textfile(report: dict, path: str | Path) -> None:
    """The report's scores as gauges in node-exporter textfile-collector format (written atomically)."""
    registry = CollectorRegistry()
    score = Gauge("rakuten_drift_score", "Drift score of one feature (PSI or chi-square statistic)",
                  ["feature"], registry=registry)
    threshold = Gauge("rakuten_drift_threshold", "Score above which the feature counts as drifted",
                      ["feature"], registry=registry)
    for name, feature in report["features"].items():
        score.labels(feature=name).set(feature["score"])
        threshold.labels(feature=name).set(feature["threshold"])
    Gauge("rakuten_drift_detected", "1 when at least one feature drifted", registry=registry).set(
        int(report["drift_detected"]))
    Gauge("rakuten_drift_production_samples", "Production predictions the report compared",
          registry=registry).set(report["n_production"])
    Gauge("rakuten_drift_report_timestamp_seconds", "When the drift report was generated (Unix time)",
          registry=registry).set(report_timestamp(report))
    if report.get("review_share") is not None:
        Gauge("rakuten_review_share", "Share of the compared predictions the API sent to review",
              registry=registry).set(report["review_share"])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)


def report_timestamp(report: dict) -> float:
    """The report's generated_at as Unix seconds."""
    return datetime.fromisoformat(report["generated_at"]).timestamp()


def plot_scores(axes, features: dict) -> None:
    """Horizontal bars of score / threshold per feature; past the line at 1 means drifted."""
    names = list(features)
    ratios = [feature["score"] / feature["threshold"] if feature["threshold"] else 0.0 for feature in features.values()]
    colors = [COLORS["drifted"] if feature["drifted"] else COLORS["ok"] for feature in features.values()]
    axes.barh(names, ratios, color=colors)
    axes.axvline(1.0, color="black", linestyle="--", linewidth=1)
    for row, feature in enumerate(features.values()):
        axes.annotate(f"{feature['test']} {feature['score']:.3g} / {feature['threshold']:.3g}",
                      (ratios[row], row), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("score / threshold (drift when > 1)")
    axes.set_title("Drift per feature")


def plot_distribution(axes, name: str, feature: dict) -> None:
    """Grouped bars of the reference and production shares over the feature's bins or categories."""
    positions = np.arange(len(feature["bins"]))
    axes.bar(positions - 0.2, feature["reference_shares"], width=0.4, color=COLORS["reference"], label="reference")
    axes.bar(positions + 0.2, feature["production_shares"], width=0.4, color=COLORS["production"], label="production")
    axes.set_xticks(positions, feature["bins"], rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("share")
    verdict = "DRIFT" if feature["drifted"] else "ok"
    axes.set_title(f"{name} ({verdict})", color=COLORS["drifted"] if feature["drifted"] else "black")
    axes.legend(fontsize=7)


def plot_drift(report: dict, path: str | Path) -> None:
    """A PNG: the per-feature verdict on top, then reference vs production distributions of each feature."""
    # The object API (no pyplot) needs no display and keeps no global figure state.
    from matplotlib.figure import Figure

    features = report["features"]
    columns, rows = 3, 1 + (len(features) + 2) // 3
    figure = Figure(figsize=(5 * columns, 3.6 * rows), layout="constrained")
    grid = figure.add_gridspec(rows, columns)
    summary = figure.add_subplot(grid[0, :])
    if features:
        plot_scores(summary, features)
    else:
        summary.axis("off")
        summary.text(0.5, 0.5, f"No verdict: {report['n_production']} production predictions "
                     f"({report.get('status', '')})", ha="center", va="center", fontsize=14)
    for index, (name, feature) in enumerate(features.items()):
        plot_distribution(figure.add_subplot(grid[1 + index // columns, index % columns]), name, feature)
    figure.suptitle(f"Drift report {report['generated_at']}: {report['n_production']} production vs "
                    f"{report['n_reference']} reference rows")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
