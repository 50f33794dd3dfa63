"""Model files: the baseline loads without running code from the file; class mappings are checked."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skops.io as sio
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from pipeline_utils import REPO_ROOT
from rakuten_mm.categories import CODES
from rakuten_mm.features.tfidf import TfidfFeaturizer
from rakuten_mm.models.baseline import (
    TemperatureCalibratedSVC, all_class_scores, baseline_probabilities, build_baseline, fit_temperature,
    out_of_fold_scores, scores_to_probabilities, served_baseline,
)
from rakuten_mm.models import crossfit
from rakuten_mm.models.classes import ClassMappingError, check_model_classes, write_classes
from rakuten_mm.models.sklearn_files import UntrustedModelFileError, load_sklearn_model, save_sklearn_model

TEXTS = ["piscine ronde", "piscine tubulaire", "livre poche", "livre relié", "jouet bois", "jouet peluche"] * 4
LABELS = np.array([0, 0, 1, 1, 2, 2] * 4)
TFIDF = {"word_ngrams": [1, 1], "char_ngrams": [3, 4], "min_df": 1, "word_max_features": 1000,
         "char_max_features": 1000, "sublinear_tf": True}
PARAMS = {"C": 1.0, "calibration_folds": 3, "seed": 0, "workers": 2}
FEATURIZER, FEATURES = TfidfFeaturizer.fit_transform(TEXTS, np.arange(len(TEXTS)), TFIDF)


def rows(*texts: str):
    """The shared featurizer's rows for some texts."""
    return FEATURIZER.transform(list(texts))


SAVE_SCRIPT = """
import sys
import numpy as np
from rakuten_mm.features.tfidf import TfidfFeaturizer
from rakuten_mm.models.baseline import build_baseline
from rakuten_mm.models.sklearn_files import save_sklearn_model
_, features = TfidfFeaturizer.fit_transform({texts!r}, np.arange({n}), {tfidf!r})
model = build_baseline({params!r}).fit(features, np.array({labels!r}))
model.predict_proba(features)  # as the stage does before saving
save_sklearn_model(model, sys.argv[1])
"""


def test_the_baseline_saves_byte_identically_across_processes(tmp_path):
    # Two processes with other string hash seeds and memory addresses: what a rerun of the stage sees.
    script = SAVE_SCRIPT.format(texts=TEXTS, n=len(TEXTS), tfidf=TFIDF, params=PARAMS, labels=LABELS.tolist())
    for name, seed in (("a", "1"), ("b", "2")):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{name}.skops")], cwd=REPO_ROOT, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()


def test_the_baseline_round_trips_through_skops(tmp_path):
    model = build_baseline(PARAMS).fit(FEATURES, LABELS)
    save_sklearn_model(model, tmp_path / "a.skops")
    loaded = load_sklearn_model(tmp_path / "a.skops")
    probe = rows("piscine", "livre de poche")
    np.testing.assert_allclose(baseline_probabilities(loaded, probe, 27), baseline_probabilities(model, probe, 27))


def test_a_file_holding_a_type_outside_the_trusted_list_is_refused(tmp_path):
    # LogisticRegression is harmless, but not in the list: anything unexpected is refused, not loaded.
    sio.dump({"model": LogisticRegression(), "svm": TemperatureCalibratedSVC()}, tmp_path / "other.skops")
    sio.dump({"wrapped": LinearSVC(), "calibrated": TemperatureCalibratedSVC()}, tmp_path / "ok.skops")
    assert set(load_sklearn_model(tmp_path / "ok.skops")) == {"wrapped", "calibrated"}
    sio.dump({"fn": np.load}, tmp_path / "evil.skops")
    with pytest.raises(UntrustedModelFileError, match="numpy"):
        load_sklearn_model(tmp_path / "evil.skops")


def test_calibrated_probabilities_follow_the_svm_and_sum_to_one():
    model = build_baseline(PARAMS).fit(FEATURES, LABELS)
    probabilities = baseline_probabilities(model, rows("piscine ronde", "jouet"), 27)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert probabilities.argmax(axis=1).tolist() == [0, 2]
    # Classes never seen in training get exactly 0.
    assert (probabilities[:, 3:] == 0).all()


def test_a_model_saved_for_other_classes_is_a_clear_error(tmp_path):
    write_classes(tmp_path)
    check_model_classes(tmp_path)
    shuffled = [CODES[1], CODES[0], *CODES[2:]]
    (tmp_path / "classes.json").write_text(json.dumps({"prdtypecode": shuffled}))
    with pytest.raises(ClassMappingError, match="trained for classes"):
        check_model_classes(tmp_path)
    (tmp_path / "classes.json").unlink()
    with pytest.raises(ClassMappingError, match="no class mapping"):
        check_model_classes(tmp_path)


def test_a_class_with_a_single_training_row_is_still_learned_and_calibrated():
    texts = [*TEXTS, "chaussette bébé"]
    labels = np.concatenate([LABELS, [3]])
    featurizer, features = TfidfFeaturizer.fit_transform(texts, np.arange(len(texts)), TFIDF)
    model = build_baseline(PARAMS).fit(features, labels)
    # The single row still trains the SVM (the temperature comes from the classes that can be held out).
    probabilities = baseline_probabilities(model, featurizer.transform(["chaussette"]), 27)
    assert probabilities.argmax() == 3


def separable_rows(n_rows: int, seed: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Noisy rows of 27 classes, each class a cluster: an SVM scores them far from calibrated."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 27, n_rows)
    centres = np.random.default_rng(99).normal(size=(27, 60))
    return sparse.csr_matrix(centres[labels] + rng.normal(scale=1.5, size=(n_rows, 60))), labels


def held_out_log_loss(scores: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-probability of the true class under softmax(scores / temperature)."""
    return float(-np.log(scores_to_probabilities(scores, temperature)[np.arange(len(labels)), labels]).mean())


def test_the_out_of_fold_temperature_lowers_the_log_loss_of_rows_it_never_saw():
    features, labels = separable_rows(1200, seed=0)
    temperature = fit_temperature(out_of_fold_scores(PARAMS, features, labels, np.arange(1200) % 5, 27), labels)
    fresh, fresh_labels = separable_rows(600, seed=1)
    svm = served_baseline({**PARAMS, "refit": True}, features, labels, np.arange(0), np.arange(1200), temperature)
    scores = all_class_scores(svm.svm_, fresh, 27)
    assert held_out_log_loss(scores, fresh_labels, temperature) < held_out_log_loss(scores, fresh_labels, 1.0) - 0.3


def test_folds_fitted_in_worker_processes_give_each_row_its_own_folds_scores(monkeypatch):
    features, labels = separable_rows(600, seed=3)
    folds = np.arange(600) % 5
    monkeypatch.setattr(crossfit, "MIN_ROWS_FOR_WORKERS", 1)  # worker processes for these 600 rows
    side_by_side = out_of_fold_scores(PARAMS, features, labels, folds, 27)
    one_by_one = out_of_fold_scores({**PARAMS, "workers": 1}, features, labels, folds, 27)
    np.testing.assert_array_equal(side_by_side, one_by_one)
    fold_one = LinearSVC(C=PARAMS["C"], random_state=PARAMS["seed"]).fit(features[folds != 1], labels[folds != 1])
    np.testing.assert_allclose(side_by_side[folds == 1], fold_one.decision_function(features[folds == 1]), rtol=1e-6)


def test_folds_of_few_rows_are_fitted_without_worker_processes(monkeypatch):
    features, labels = separable_rows(600, seed=3)
    started = []
    parallel = crossfit.Parallel
    monkeypatch.setattr(crossfit, "Parallel",
                        lambda n_jobs, **kwargs: started.append(n_jobs) or parallel(n_jobs, **kwargs))
    out_of_fold_scores(PARAMS, features, labels, np.arange(600) % 5, 27)
    monkeypatch.setattr(crossfit, "MIN_ROWS_FOR_WORKERS", 600)
    out_of_fold_scores(PARAMS, features, labels, np.arange(600) % 5, 27)
    assert started == [1, PARAMS["workers"]]


@pytest.mark.parametrize("refit", [True, False])
def test_only_a_refit_learns_from_the_validation_rows(refit):
    features, labels = separable_rows(600, seed=2)
    labels[labels == 26] = 25
    validation = np.arange(500, 600)
    labels[validation[:30]] = 26  # a class seen only in the validation rows
    model = served_baseline({**PARAMS, "refit": refit}, features, labels, np.arange(500), np.arange(600), 1.0)
    predicted = baseline_probabilities(model, features[validation[:30]], 27).argmax(1)
    assert ((predicted == 26).mean() > 0.5) if refit else not (predicted == 26).any()
