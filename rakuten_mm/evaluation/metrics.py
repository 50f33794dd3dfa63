"""Classification metrics: accuracy, weighted F1 (the challenge's metric), macro and per-class F1."""

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def weighted_f1(y_true, y_pred) -> float:
    """Support-weighted F1, the Rakuten challenge's metric: scikit-learn's, from three bincounts."""
    # The fusion's weight search and every epoch's early stopping call this thousands of times;
    # f1_score's input validation cost ~2 ms a call, this ~20 µs on 700 rows.
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    if not len(y_true):
        return 0.0
    _, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    true, predicted = codes[:len(y_true)], codes[len(y_true):]
    n_labels = int(codes.max()) + 1
    support = np.bincount(true, minlength=n_labels)
    hits = np.bincount(true[true == predicted], minlength=n_labels)
    # Per label F1 = 2·tp / (support + predicted count); labels never predicted nor present weigh 0.
    f1 = 2 * hits / np.maximum(support + np.bincount(predicted, minlength=n_labels), 1)
    return float((f1 * support).sum() / len(y_true))


def classification_scores(y_true, y_pred) -> dict:
    """Accuracy, weighted F1 and macro F1."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_weighted": weighted_f1(y_true, y_pred),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def per_class_f1(y_true, y_pred, codes: list[int]) -> dict:
    """F1 of each class, keyed by its product type code."""
    scores = f1_score(y_true, y_pred, labels=np.arange(len(codes)), average=None, zero_division=0)
    return {str(code): float(score) for code, score in zip(codes, scores, strict=True)}
