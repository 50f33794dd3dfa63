"""The classical baseline: TF-IDF word and character n-grams, a linear SVM, calibrated probabilities."""

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC


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

    def __init__(self, C: float = 1.0, folds: int = 3, random_state: int | None = None):
        self.C = C
        self.folds = folds
        self.random_state = random_state

    def fit(self, features, labels):
        """Fit the SVM on all rows and the temperature on k-fold held-out scores."""
        labels = np.asarray(labels)
        self.svm_ = LinearSVC(C=self.C, random_state=self.random_state).fit(features, labels)
        self.classes_ = self.svm_.classes_
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


def build_baseline(params: dict) -> Pipeline:
    """TF-IDF on word and char_wb n-grams feeding a temperature-calibrated LinearSVC."""
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=tuple(params["word_ngrams"]), sublinear_tf=True,
                                  min_df=params["min_df"], max_features=params["max_features"])),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(params["char_ngrams"]),
                                  sublinear_tf=True, min_df=params["min_df"],
                                  max_features=params["max_features"])),
    ])
    # SVM margins are no probabilities: the fusion needs calibrated scores to weigh them with the others.
    svm = TemperatureCalibratedSVC(C=params["C"], folds=params["calibration_folds"], random_state=params["seed"])
    return Pipeline([("tfidf", features), ("svm", svm)])


def compact_for_saving(model: Pipeline) -> Pipeline:
    """Drop the vectorizers' per-run stop-word state and make their vocabularies plain ints."""
    # stop_words_ is a set, saved in the order of the per-process string hash seed (scikit-learn
    # documents it as safe to delete); _stop_words_id is an id(), a memory address, only used to
    # skip re-checking the stop words list, which is None here. Every transform() sets it again,
    # so call this just before saving.
    for _, vectorizer in model.named_steps["tfidf"].transformer_list:
        vectorizer.stop_words_ = None
        vars(vectorizer).pop("_stop_words_id", None)
        # The vocabulary's indices are numpy ints: skops writes each one as an array file of its
        # own (15,805 files, 11 s to save, on the tiny pipeline) where Python ints go in its JSON.
        vectorizer.vocabulary_ = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
    return model


def baseline_probabilities(model: Pipeline, texts, n_classes: int) -> np.ndarray:
    """Probabilities over all n_classes (classes absent from training get 0)."""
    probabilities = np.zeros((len(texts), n_classes), dtype=np.float32)
    if len(texts):
        probabilities[:, model.classes_] = model.predict_proba(np.asarray(texts, dtype=object))
    return probabilities
