"""The review threshold: precision against coverage, and the threshold chosen for a target, on a hand-worked example."""

import numpy as np
import pytest

from rakuten_mm.evaluation.metrics import (
    choose_threshold, precision_coverage_curve, review_rule, review_scores, review_scores_per_class,
)

# Five products by decreasing confidence; the third and the fifth are wrong.
CONFIDENCE = [0.6, 0.9, 0.5, 0.8, 0.7]
CORRECT = [True, True, False, True, False]
# Worked by hand, threshold by threshold (filed = confidence >= threshold):
#   0.9: 1 filed, 1 right -> precision 1,   coverage 0.2
#   0.8: 2 filed, 2 right -> precision 1,   coverage 0.4
#   0.7: 3 filed, 2 right -> precision 2/3, coverage 0.6
#   0.6: 4 filed, 3 right -> precision 3/4, coverage 0.8
#   0.5: 5 filed, 3 right -> precision 3/5, coverage 1.0


def test_the_curve_matches_the_hand_worked_example():
    curve = precision_coverage_curve(CONFIDENCE, CORRECT)
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert curve["precision"] == pytest.approx([1, 1, 2 / 3, 3 / 4, 3 / 5])
    assert curve["coverage"] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_ties_are_filed_together():
    # Two products at 0.8, one right and one wrong: no threshold files only one of them.
    curve = precision_coverage_curve([0.9, 0.8, 0.8, 0.4], [True, True, False, True])
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.4]
    assert curve["precision"] == pytest.approx([1, 2 / 3, 3 / 4])
    assert curve["coverage"] == pytest.approx([0.25, 0.75, 1.0])


@pytest.mark.parametrize(("target", "threshold"), [(0.75, 0.6), (0.7, 0.6), (0.9, 0.8), (0.6, 0.5), (1.0, 0.8)])
def test_the_lowest_threshold_that_reaches_the_target_precision(target, threshold):
    # 0.75 is reached at 0.6 although 0.7 (higher) does not reach it: the lowest such threshold wins.
    choice = choose_threshold(precision_coverage_curve(CONFIDENCE, CORRECT), target)
    assert choice == {"threshold": threshold, "chosen_by": "target_precision", "reached": True}


@pytest.mark.parametrize(("coverage", "threshold"), [(0.5, 0.7), (0.6, 0.7), (0.61, 0.6), (0.1, 0.9), (1.0, 0.5)])
def test_target_coverage_chooses_the_highest_threshold_that_files_that_share(coverage, threshold):
    choice = choose_threshold(precision_coverage_curve(CONFIDENCE, CORRECT), 0.95, target_coverage=coverage)
    assert choice == {"threshold": threshold, "chosen_by": "target_coverage", "reached": True}


def test_an_unreachable_precision_files_only_certain_products():
    curve = precision_coverage_curve([0.9, 0.8], [False, True])
    assert choose_threshold(curve, 0.95) == {"threshold": 1.0, "chosen_by": "target_precision", "reached": False}
    assert choose_threshold(precision_coverage_curve([], []), 0.95)["reached"] is False


def probabilities_with_confidence(confidence, predicted, n_classes=3):
    """Rows whose top-1 class is `predicted` with probability `confidence`, the rest spread evenly."""
    rows = np.full((len(confidence), n_classes), 0.0)
    for row, (value, cls) in enumerate(zip(confidence, predicted)):
        rows[row] = (1 - value) / (n_classes - 1)
        rows[row, cls] = value
    return rows


def test_review_rule_and_scores_on_probabilities():
    predicted = [0, 1, 0, 2, 1]
    probs = probabilities_with_confidence(CONFIDENCE, predicted)
    labels = np.where(CORRECT, predicted, (np.asarray(predicted) + 1) % 3)
    rule = review_rule(probs, labels, 0.75, None)
    assert rule == {"threshold": 0.6, "chosen_by": "target_precision", "target_precision": 0.75,
                    "target_coverage": None, "reached": True,
                    "oof": {"rows": 5, "coverage": pytest.approx(0.8), "precision": pytest.approx(0.75)}}
    # At 0.65 the products at 0.9, 0.8 and 0.7 are filed; the one at 0.7 is wrong.
    assert review_scores(probs, labels, 0.65) == {"rows": 5, "coverage": pytest.approx(0.6),
                                                  "precision": pytest.approx(2 / 3)}
    per_class = review_scores_per_class(probs, labels, 0.65, [10, 20, 30])
    # Predicted 10: confidences 0.6 (right) and 0.5 (wrong): neither filed.
    assert per_class["10"] == {"rows": 2, "coverage": 0.0, "precision": None}
    # Predicted 20: 0.9 (right) and 0.7 (wrong): both filed.
    assert per_class["20"] == {"rows": 2, "coverage": 1.0, "precision": 0.5}
    assert per_class["30"] == {"rows": 1, "coverage": 1.0, "precision": 1.0}
