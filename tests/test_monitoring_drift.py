"""Drift detection on synthetic traffic: flags the features that shifted, and only those."""

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline_utils import REPO_ROOT
from monitoring_support import (combined_shift, resampled_predictions, simulated_predictions, synthetic_profiles,
                                with_missing, with_skewed_classes, write_prediction_log)
from rakuten_mm.monitoring.drift import (FEATURES, POOLED_LABEL, categorical_chi2, category_counts, detect_drift,
                                         drift_report, pool_rare_categories, psi)
from rakuten_mm.monitoring.outputs import plot_drift, write_prometheus_textfile
from rakuten_mm.monitoring.sources import read_production_log
from rakuten_mm.params import load_params

# Sizes at which the shipped thresholds separate noise from these shifts with a wide margin:
# the PSI noise floor is about (bins - 1) * (1/n_reference + 1/n_production) ~ 0.007 here.
N_REFERENCE, N_REFERENCE_PREDICTIONS, N_PRODUCTION = 4000, 1500, 2000
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def params() -> dict:
    """The shipped monitor settings."""
    return load_params(REPO_ROOT / "params.yaml")["monitor"]


@pytest.fixture(scope="module")
def reference() -> dict[str, pd.Series]:
    """Training-like input profiles and test-like predictions, from the synthetic generator."""
    inputs = synthetic_profiles(N_REFERENCE, seed=1)
    predictions = simulated_predictions(synthetic_profiles(N_REFERENCE_PREDICTIONS, seed=2)["true_class"], seed=3)
    return {**{name: inputs[name] for name in FEATURES if name in inputs},
            "predicted_class": predictions["predicted_class"], "confidence": predictions["confidence"]}


@pytest.fixture(scope="module")
def unshifted(reference) -> pd.DataFrame:
    """Fresh products from the same generator, predictions drawn from the reference's."""
    inputs = synthetic_profiles(N_PRODUCTION, seed=11)
    predictions = resampled_predictions(pd.DataFrame({name: reference[name] for name in ("predicted_class",
                                                                                       "confidence")}),
                                        N_PRODUCTION, seed=12)
    return pd.concat([inputs, predictions], axis=1)


@pytest.fixture(scope="module")
def english(unshifted) -> pd.DataFrame:
    """The same traffic, but every class that has English listings sends English ones."""
    inputs = synthetic_profiles(N_PRODUCTION, seed=11, english=True)
    return pd.concat([inputs, unshifted[["predicted_class", "confidence"]]], axis=1)


def with_doubled_titles(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose titles are written twice ('A B' -> 'A B A B'): longer, same language votes."""
    frame = frame.copy()
    frame["title_length"] = 2 * frame["title_length"] + 1
    return frame


SHIFTS = {
    "title_length": lambda frame, _: with_doubled_titles(frame),
    "description_missing": lambda frame, _: with_missing(frame, "description_missing", 0.4, seed=21),
    "image_missing": lambda frame, _: with_missing(frame, "image_missing", 0.1, seed=22),
    "language": lambda _, english: english,
    "predicted_class": lambda frame, _: with_skewed_classes(frame, seed=23),
    "confidence": lambda frame, _: frame.assign(confidence=frame["confidence"] * 0.75),
}


def drifted_features(result) -> set[str]:
    """Names of the features a DriftResult flags."""
    return {name for name, feature in result.features.items() if feature.drifted}


def test_unshifted_traffic_is_not_flagged(reference, unshifted, params):
    result = detect_drift(reference, unshifted, params)
    assert set(result.features) == set(FEATURES)
    assert drifted_features(result) == set() and not result.drift_detected


@pytest.mark.parametrize("feature", list(SHIFTS))
def test_a_shift_flags_that_feature_only(feature, reference, unshifted, english, params):
    result = detect_drift(reference, SHIFTS[feature](unshifted, english), params)
    assert drifted_features(result) == {feature}
    assert result.drift_detected


def test_english_traffic_is_seen_as_english(unshifted, english):
    shares = {name: frame["language"].value_counts(normalize=True) for name, frame in
              {"unshifted": unshifted, "english": english}.items()}
    assert shares["english"]["en"] > 2 * shares["unshifted"]["en"]
    assert shares["english"]["fr"] < shares["unshifted"]["fr"] - 0.15


def test_a_combined_shift_flags_every_shifted_feature(reference, unshifted, english, params):
    result = detect_drift(reference, combined_shift(english, seed=31), params)
    assert drifted_features(result) == {"description_missing", "image_missing", "language", "predicted_class",
                                        "confidence"}


def test_too_few_predictions_give_no_verdict(reference, unshifted, params):
    shifted = with_missing(unshifted, "image_missing", 1.0, seed=0).head(params["min_samples"] - 1)
    result = detect_drift(reference, shifted, params)
    assert result.status == "insufficient_data" and result.features == {} and not result.drift_detected


def test_psi_by_hand():
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(expected)


def test_rare_categories_are_pooled_for_chi2():
    reference = pd.Series(["fr"] * 900 + ["en"] * 97 + ["de"] * 2 + ["other"])
    production = pd.Series(["fr"] * 90 + ["en"] * 9 + ["de"])
    pooled = pool_rare_categories(category_counts(reference, production), min_expected=5)
    assert list(pooled.index) == ["fr", "en", POOLED_LABEL]
    assert pooled.loc[POOLED_LABEL].tolist() == [3, 1]
    drift = categorical_chi2(reference, production, alpha=0.01, min_expected=5)
    assert drift.labels == list(pooled.index) and not drift.drifted


def test_a_category_never_seen_in_the_reference_is_drift():
    reference = pd.Series(["fr"] * 500 + ["en"] * 500)
    production = pd.Series(["fr"] * 250 + ["en"] * 150 + ["other"] * 100)
    assert categorical_chi2(reference, production, alpha=0.01, min_expected=5).drifted


def test_report_textfile_and_plot(reference, unshifted, params, tmp_path):
    result = detect_drift(reference, SHIFTS["image_missing"](unshifted, None), params)
    report = drift_report(result, generated_at=NOW)
    assert set(report) >= {"generated_at", "n_production", "n_reference", "drift_detected", "features"}
    assert report["n_production"] == N_PRODUCTION and report["n_reference"] == N_REFERENCE
    assert report["features"]["image_missing"]["test"] == params["tests"]["image_missing"]
    write_prometheus_textfile(report, tmp_path / "drift.prom")
    samples = {(sample.name, sample.labels.get("feature")): sample.value for family in
               text_string_to_metric_families((tmp_path / "drift.prom").read_text()) for sample in family.samples}
    for name, feature in report["features"].items():
        assert samples["rakuten_drift_score", name] == pytest.approx(feature["score"])
        assert samples["rakuten_drift_threshold", name] == pytest.approx(feature["threshold"])
    assert samples["rakuten_drift_detected", None] == 1.0
    assert samples["rakuten_drift_report_timestamp_seconds", None] == NOW.timestamp()
    plot_drift(report, tmp_path / "drift.png")
    assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_production_log_window(unshifted, tmp_path):
    log = tmp_path / "predictions.jsonl"
    old, recent = unshifted.iloc[:100], unshifted.iloc[100:400]
    write_prediction_log(log, old, end=NOW - timedelta(days=10))
    write_prediction_log(log, recent.iloc[:100], end=NOW - timedelta(hours=1), variant="candidate")
    with open(log, "a", encoding="utf-8") as handle:
        handle.write('{"ts": "2025-01-15T11:00:00+00:00", "title_len\n\n[1, 2]\n')
    write_prediction_log(log, recent.iloc[100:], end=NOW)
    assert len(read_production_log(log, None, None, None, NOW)) == 400
    current_week = read_production_log(log, None, 7, "current", NOW)
    assert len(current_week) == 200
    assert current_week["predicted_class"].tolist() == recent["predicted_class"].iloc[100:].tolist()
    # The last 203 lines: the current 200 and the three unreadable ones, which are skipped.
    assert len(read_production_log(log, 203, None, None, NOW)) == 200
    assert read_production_log(tmp_path / "absent.jsonl", None, 7, "current", NOW).empty
