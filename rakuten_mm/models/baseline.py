"""The classical baseline: a linear SVM on the tfidf stage's word and character n-grams, calibrated probabilities."""

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC

from rakuten_mm.models.crossfit import cross_fit

# One-vs-rest margins lie within a few units of 0: a class the fold's SVM never saw scores far
# below any other, yet finitely, so a row of that class keeps a finite log-loss.
ABSENT_CLASS_SCORE = -10.0


def calibration_rows(labels: np.ndarray, wanted: int) -> tuple[np.ndarray, int]:
    """Rows whose class has at least 2 training rows, and how many folds (≤ wanted) they allow."""
    counts = np.bincount(labels)
    rows = np.flatnonzero(counts[labels] >= 2)
    return rows, int(min(wanted, counts[labels[rows]].min())) if len(rows) else 0


def fit_temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature that minimises the log-loss of held-out decision scores."""
    rows = np.arange(len(labels))

    def log_loss(log_temperature: float) -> float:
        return -float(log_softmax(scores / np.exp(log_temperature), axis=1)[rows, labels].mean())

    return float(np.exp(minimize_scalar(log_loss, bounds=(-6.0, 4.0), method="bounded").x))


class TemperatureCalibratedSVC(ClassifierMixin, BaseEstimator):
    """A LinearSVC whose decision scores become probabilities through a softmax with one fitted temperature.

    The temperature is fitted on cross-validated scores of the training rows. One linear model
    and one number: predicting a single product costs a matrix-vector product, where
    CalibratedClassifierCV runs folds × classes calibrators (~20 ms a call).
    """

    def __init__(self, C: float = 1.0, folds: int = 3, random_state: int | None = None,
                 temperature: float | None = None):
        self.C = C
        self.folds = folds
        self.random_state = random_state
        self.temperature = temperature

    def fit(self, features, labels):
        """Fit the SVM on all rows and the temperature on k-fold held-out scores (unless given)."""
        labels = np.asarray(labels)
        self.svm_ = LinearSVC(C=self.C, random_state=self.random_state).fit(features, labels)
        self.classes_ = self.svm_.classes_
        if self.temperature is not None:
            # Fitted beforehand on out-of-fold scores (the pipeline's cross-fitting): no nested folds.
            self.temperature_ = float(self.temperature)
            return self
        # A class with a single training row cannot be held out: the temperature is fitted on the others.
        rows, n_folds = calibration_rows(labels, self.folds)
        self.temperature_ = 1.0
        if n_folds >= 2 and len(np.unique(labels[rows])) > 2:
            folds = StratifiedKFold(n_folds, shuffle=True, random_state=self.random_state)
            held_out = cross_val_predict(LinearSVC(C=self.C, random_state=self.random_state), features[rows],
                                         labels[rows], cv=folds, method="decision_function")
            seen = np.unique(labels[rows])
            self.temperature_ = fit_temperature(held_out, np.searchsorted(seen, labels[rows]))
        return self

    def predict_proba(self, features) -> np.ndarray:
        """Softmax of the decision scores divided by the temperature."""
        return softmax(self.svm_.decision_function(features) / self.temperature_, axis=1)

    def predict(self, features) -> np.ndarray:
        """The class with the highest score."""
        return self.classes_[self.svm_.decision_function(features).argmax(axis=1)]


def build_baseline(params: dict, temperature: float | None = None) -> TemperatureCalibratedSVC:
    """A temperature-calibrated LinearSVC for the tfidf stage's rows (temperature: fixed, or fitted by k folds)."""
    # SVM margins are no probabilities: the fusion needs calibrated scores to weigh them with the others.
    return TemperatureCalibratedSVC(C=params["C"], folds=params["calibration_folds"], random_state=params["seed"],
                                    temperature=temperature)


def all_class_scores(svm: LinearSVC, features, n_classes: int) -> np.ndarray:
    """Decision scores over all n_classes; classes absent from the fit get ABSENT_CLASS_SCORE."""
    scores = np.full((features.shape[0], n_classes), ABSENT_CLASS_SCORE, dtype=np.float64)
    decision = svm.decision_function(features)
    if len(svm.classes_) == 2:  # one column for two classes
        decision = np.stack([-decision, decision], axis=1)
    scores[:, svm.classes_] = decision
    return scores


def out_of_fold_scores(params: dict, features, labels: np.ndarray, folds: np.ndarray, n_classes: int,
                       name: str = "baseline") -> np.ndarray:
    """Each row's SVM decision scores from an SVM fitted on the other folds (params C, seed, workers)."""
    def fit_predict(fit, held):
        svm = LinearSVC(C=params["C"], random_state=params["seed"]).fit(features[fit], labels[fit])
        return all_class_scores(svm, features[held], n_classes)

    # liblinear fits one core: folds fitted side by side take ~1/workers of the time, same models.
    return cross_fit(fit_predict, folds, n_classes, name, params["workers"]).astype(np.float64)


def scores_to_probabilities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(scores / temperature) as float32."""
    return softmax(scores / temperature, axis=1).astype(np.float32)


def baseline_probabilities(model: TemperatureCalibratedSVC, features, n_classes: int) -> np.ndarray:
    """Probabilities over all n_classes (classes absent from training get 0) for tf-idf rows."""
    probabilities = np.zeros((features.shape[0], n_classes), dtype=np.float32)
    if features.shape[0]:
        probabilities[:, model.classes_] = model.predict_proba(features)
    return probabilities


def served_baseline(params: dict, features, labels: np.ndarray, train_rows: np.ndarray, fitting_rows: np.ndarray,
                    temperature: float) -> TemperatureCalibratedSVC:
    """The served SVM: refitted on train + validation (params.refit) or fitted on train, temperature frozen."""
    rows = fitting_rows if params["refit"] else train_rows
    return build_baseline(params, temperature).fit(features[rows], labels[rows])
