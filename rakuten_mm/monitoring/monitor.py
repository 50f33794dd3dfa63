"""Drift monitor: recent production traffic (the API's prediction log) against the training data.

    python -m rakuten_mm.monitoring.monitor [--fail-on-drift] [--last-days 7] [--log logs/predictions.jsonl]

Settings come from the `monitor:` section of params.yaml. Writes the drift report JSON, a Prometheus
textfile and a PNG; exits 0, or 3 with --fail-on-drift when a feature drifted (the retraining trigger).
"""

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from rakuten_mm.monitoring.drift import detect_drift, drift_report
from rakuten_mm.monitoring.outputs import plot_drift, write_prometheus_textfile, write_report
from rakuten_mm.monitoring.sources import load_reference, read_production_log
from rakuten_mm.params import load_params

log = logging.getLogger("monitor")
DRIFT_EXIT_CODE = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; each one overrides the params.yaml value of the same name."""
    parser = argparse.ArgumentParser(prog="python -m rakuten_mm.monitoring.monitor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--log", help="prediction log (JSON lines); default monitor.production_log")
    parser.add_argument("--report", help="drift report JSON, with drift.prom and drift.png beside it; "
                                         "default monitor.outputs")
    parser.add_argument("--last-days", type=float, help="only predictions of the last N days")
    parser.add_argument("--last-lines", type=int, help="only the log's last N lines")
    parser.add_argument("--fail-on-drift", action="store_true", help=f"exit {DRIFT_EXIT_CODE} when drift is detected")
    return parser.parse_args(argv)


def monitor_settings(args: argparse.Namespace) -> dict:
    """The monitor section of params.yaml with the command-line overrides applied."""
    settings = load_params(args.params)["monitor"]
    overrides = {"production_log": args.log, "last_days": args.last_days, "last_lines": args.last_lines}
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if args.report:
        report = Path(args.report)
        settings["outputs"] = {"report": report, "textfile": report.with_suffix(".prom"),
                               "plot": report.with_suffix(".png")}
    return settings


def run_monitor(settings: dict, now: datetime) -> dict:
    """Compare the production window with the reference and write the report, textfile and plot."""
    production = read_production_log(settings["production_log"], settings["last_lines"], settings["last_days"],
                                     settings["variant"], now)
    reference = load_reference(settings["reference"])
    report = drift_report(detect_drift(reference, production, settings), generated_at=now)
    outputs = settings["outputs"]
    write_report(report, outputs["report"])
    write_prometheus_textfile(report, outputs["textfile"])
    plot_drift(report, outputs["plot"])
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the monitor and return the exit code (0, or 3 on drift with --fail-on-drift)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s monitor %(levelname)s %(message)s")
    args = parse_args(argv)
    settings = monitor_settings(args)
    report = run_monitor(settings, datetime.now(timezone.utc))
    drifted = [name for name, feature in report["features"].items() if feature["drifted"]]
    log.info("%s: %d production vs %d reference rows, drifted features: %s (report %s)", report["status"],
             report["n_production"], report["n_reference"], drifted or "none", settings["outputs"]["report"])
    return DRIFT_EXIT_CODE if args.fail_on_drift and report["drift_detected"] else 0


if __name__ == "__main__":
    sys.exit(main())
