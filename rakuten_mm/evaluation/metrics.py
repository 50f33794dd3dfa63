"""Classification metrics: accuracy, weighted F1 (the challenge's metric), macro and per-class F1."""

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def weighted_f1(y_true, y_pred) -> float:
    """Support-weighted F1, the Rakuten challenge's metric."""
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


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
