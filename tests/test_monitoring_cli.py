"""The monitor command end to end on the tiny pipeline's outputs, with production logs written as the API writes them."""

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from monitoring_support import combined_shift, resampled_predictions, synthetic_profiles, write_prediction_log
from rakuten_mm.data.dataset import rows_of
from rakuten_mm.monitoring import monitor
from rakuten_mm.monitoring.drift import FEATURES
from rakuten_mm.monitoring.sources import reference_predictions
from rakuten_mm.params import load_params

# Enough lines that the tiny reference (~490 training rows, ~105 test predictions) separates noise from shift.
N_PRODUCTION = 600
SHIFTED_FEATURES = {"description_missing", "image_missing", "language", "predicted_class", "confidence"}


@pytest.fixture(scope="module")
def repo(tiny_pipeline) -> Path:
    """The tiny pipeline's repository copy (the monitor reads its reference from there)."""
    return tiny_pipeline[0]


@pytest.fixture(scope="module")
def log_path(repo, tmp_path_factory) -> Path:
    """A prediction log: shifted traffic three days ago (2/3 of the week), then unshifted traffic up to now."""
    settings = load_params(repo / "params.yaml")["monitor"]
    predictions = reference_predictions(repo / settings["reference"]["probabilities"])
    unshifted = pd.concat([synthetic_profiles(N_PRODUCTION, seed=51),
                           resampled_predictions(predictions, N_PRODUCTION, seed=52)], axis=1)
    english = pd.concat([synthetic_profiles(2 * N_PRODUCTION, seed=53, english=True),
                         resampled_predictions(predictions, 2 * N_PRODUCTION, seed=54)], axis=1)
    path = tmp_path_factory.mktemp("production") / "predictions.jsonl"
    now = datetime.now(timezone.utc)
    write_prediction_log(path, combined_shift(english, seed=55), end=now - timedelta(days=3))
    write_prediction_log(path, unshifted, end=now)
    return path


def run_monitor(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m rakuten_mm.monitoring.monitor ARGS` in the repository copy."""
    return subprocess.run([sys.executable, "-m", "rakuten_mm.monitoring.monitor", *args], cwd=repo,
                          capture_output=True, text=True, timeout=300)


def drifted(report: dict) -> set[str]:
    """Names of the features a report flags."""
    return {name for name, feature in report["features"].items() if feature["drifted"]}


def test_recent_unshifted_traffic_exits_0_with_fail_on_drift(repo, log_path, tmp_path):
    report_path = tmp_path / "reports" / "drift.json"
    result = run_monitor(repo, "--log", str(log_path), "--report", str(report_path), "--last-days", "1",
                         "--fail-on-drift")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    split = pd.read_csv(repo / "data/processed/split.csv", index_col="row")
    assert report["n_production"] == N_PRODUCTION and report["n_reference"] == len(rows_of(split, "train"))
    assert report["status"] == "ok" and set(report["features"]) == set(FEATURES)
    assert drifted(report) == set() and report["drift_detected"] is False, report["features"]
    assert (tmp_path / "reports" / "drift.png").read_bytes()[:4] == b"\x89PNG"
    assert "rakuten_drift_detected 0.0" in (tmp_path / "reports" / "drift.prom").read_text()


def test_a_week_with_shifted_traffic_exits_3_with_fail_on_drift(repo, log_path, tmp_path):
    report_path = tmp_path / "drift.json"
    result = run_monitor(repo, "--log", str(log_path), "--report", str(report_path), "--fail-on-drift")
    assert result.returncode == monitor.DRIFT_EXIT_CODE == 3, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["n_production"] == 3 * N_PRODUCTION
    assert drifted(report) == SHIFTED_FEATURES, {name: f["score"] for name, f in report["features"].items()}
    assert "rakuten_drift_detected 1.0" in (tmp_path / "drift.prom").read_text()


def test_drift_without_the_flag_exits_0(repo, log_path, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    assert monitor.main(["--log", str(log_path), "--report", str(tmp_path / "drift.json")]) == 0
    assert json.loads((tmp_path / "drift.json").read_text())["drift_detected"] is True


def test_no_log_gives_no_verdict_and_exits_0(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    code = monitor.main(["--log", str(tmp_path / "absent.jsonl"), "--report", str(tmp_path / "drift.json"),
                         "--fail-on-drift"])
    report = json.loads((tmp_path / "drift.json").read_text())
    assert code == 0 and report["status"] == "insufficient_data" and report["features"] == {}
    assert report["n_production"] == 0 and (tmp_path / "drift.png").is_file()
