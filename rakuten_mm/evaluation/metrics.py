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


def precision_coverage_curve(confidence, correct) -> dict[str, np.ndarray]:
    """Precision and coverage of the products filed automatically at each candidate threshold.

    A product is filed automatically when its top-1 probability (`confidence`) is at least the
    threshold; the candidates are the distinct confidences, in decreasing order. Coverage is the
    share filed automatically, precision the share of those whose top-1 class (`correct`) is right.
    """
    confidence, correct = np.asarray(confidence, dtype=np.float64).ravel(), np.asarray(correct, dtype=bool).ravel()
    if len(confidence) != len(correct):
        raise ValueError(f"{len(confidence)} confidences but {len(correct)} correctness flags")
    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    filed, right = np.arange(1, len(ranked) + 1), np.cumsum(correct[order])
    # Products with the same confidence are filed together: keep the last of each run of ties.
    last_of_tie = np.append(ranked[1:] != ranked[:-1], True) if len(ranked) else np.zeros(0, dtype=bool)
    return {"threshold": ranked[last_of_tie], "precision": right[last_of_tie] / filed[last_of_tie],
            "coverage": filed[last_of_tie] / max(len(ranked), 1)}


def choose_threshold(curve: dict[str, np.ndarray], target_precision: float | None,
                     target_coverage: float | None = None) -> dict:
    """The lowest threshold whose filed products reach target_precision, or the highest that files target_coverage.

    target_coverage, when set, wins. When no threshold reaches the target (or there are no rows),
    the threshold is 1.0: only products the model gives a probability of 1 are filed automatically.
    """
    if target_coverage is not None:
        reached, chosen_by = curve["coverage"] >= target_coverage, "target_coverage"
        # Coverage grows as the threshold falls: the first candidate that files enough.
        position = int(np.argmax(reached)) if reached.any() else None
    else:
        reached, chosen_by = curve["precision"] >= target_precision, "target_precision"
        # Precision is not monotonic in the threshold: the lowest one that reaches the target.
        position = int(np.flatnonzero(reached)[-1]) if reached.any() else None
    if position is None:
        return {"threshold": 1.0, "chosen_by": chosen_by, "reached": False}
    return {"threshold": float(curve["threshold"][position]), "chosen_by": chosen_by, "reached": True}


def filed_automatically(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Which products the rule files automatically: top-1 probability at least the threshold."""
    return np.asarray(probabilities).max(axis=1) >= threshold


def review_scores(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Rows, coverage and precision of the automatically filed products at a threshold."""
    auto = filed_automatically(probabilities, threshold)
    right = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    return {"rows": int(len(auto)), "coverage": float(auto.mean()) if len(auto) else 0.0,
            # Nothing filed: no precision to speak of (null in JSON, left out of the metrics).
            "precision": float(right[auto].mean()) if auto.any() else None}


def review_scores_per_class(probabilities: np.ndarray, labels: np.ndarray, threshold: float,
                            codes: list[int]) -> dict:
    """Coverage and precision at a threshold among the products the model predicts as each class."""
    # By predicted class: that is what a catalogue manager sees when a product arrives.
    predicted = np.asarray(probabilities).argmax(axis=1)
    labels = np.asarray(labels)
    return {str(code): review_scores(probabilities[predicted == index], labels[predicted == index], threshold)
            for index, code in enumerate(codes)}


def review_rule(probabilities: np.ndarray, labels: np.ndarray, target_precision: float | None,
                target_coverage: float | None) -> dict:
    """The review block saved with the served model: the chosen threshold and its scores on these rows."""
    confidence = np.asarray(probabilities).max(axis=1)
    curve = precision_coverage_curve(confidence, np.asarray(probabilities).argmax(axis=1) == np.asarray(labels))
    choice = choose_threshold(curve, target_precision, target_coverage)
    scores = review_scores(probabilities, labels, choice["threshold"])
    return {"threshold": choice["threshold"], "chosen_by": choice["chosen_by"], "target_precision": target_precision,
            "target_coverage": target_coverage, "reached": choice["reached"], "oof": scores}


def review_curve_on_grid(probabilities: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> dict:
    """Coverage and precision (None where nothing is filed) at each threshold of a fixed grid, for plots."""
    scores = [review_scores(probabilities, labels, float(threshold)) for threshold in thresholds]
    return {"coverage": [s["coverage"] for s in scores], "precision": [s["precision"] for s in scores]}
