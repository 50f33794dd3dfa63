import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rakuten_mm.categories import CODES
from rakuten_mm.evaluation.metrics import classification_scores, per_class_f1, weighted_f1
from rakuten_mm.models.fusion import (
    apply_fusion, cross_validated_probabilities, fit_fusion, fit_stacking, members_used, significant_winner,
    stacking_features,
)


def noisy_probabilities(labels, n_classes, strength, rng):
    logits = rng.normal(size=(len(labels), n_classes))
    logits[np.arange(len(labels)), labels] += strength
    probs = np.exp(logits)
    return (probs / probs.sum(1, keepdims=True)).astype(np.float32)


@pytest.fixture
def validation():
    """Three members with independent errors; the image model scores 90% of the rows."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 27, size=600)
    has_image = rng.random(600) > 0.1
    image = noisy_probabilities(labels, 27, 2.0, rng)
    image[~has_image] = np.nan
    probs = {"text": noisy_probabilities(labels, 27, 2.0, rng), "image": image,
             "baseline": noisy_probabilities(labels, 27, 2.0, rng)}
    return probs, labels, has_image


PARAMS = {"weight_grid_step": 0.1, "weight_objective": "f1", "stacking_C": 1.0, "seed": 0, "selection_margin": 2.0}
FOLDS = np.arange(600) % 5


def fit(params, probs, labels):
    """The fusion fitted with the shared 5 folds (the out-of-fold probabilities dropped)."""
    return fit_fusion(params, probs, labels, FOLDS[:len(labels)])[0]


def accuracy(probs, labels):
    return float((probs.argmax(1) == labels).mean())


@pytest.mark.parametrize("method", ["weighted", "stacking", "auto"])
def test_fusion_beats_each_member_on_rows_it_never_saw(validation, method):
    probs, labels, _ = validation
    seen, unseen = FOLDS != 0, FOLDS == 0
    fusion, _ = fit_fusion({**PARAMS, "method": method}, {n: p[seen] for n, p in probs.items()}, labels[seen],
                           FOLDS[seen])
    assert fusion["method"] == method if method != "auto" else fusion["method"] in ("weighted", "stacking")
    fused = apply_fusion(fusion, {n: p[unseen] for n, p in probs.items()})
    assert np.isfinite(fused).all() and np.allclose(fused.sum(1), 1, atol=1e-4)
    best_member = max(accuracy(probs[name][unseen], labels[unseen]) for name in ("text", "baseline"))
    assert accuracy(fused, labels[unseen]) > best_member + 0.05
    assert fusion["classes"] == list(CODES)


@pytest.mark.parametrize("objective", ["f1", "log_loss"])
def test_weighted_fusion_uses_the_other_members_where_a_member_has_no_prediction(validation, objective):
    probs, labels, has_image = validation
    fusion = fit({**PARAMS, "method": "weighted", "weight_objective": objective}, probs, labels)
    weights = fusion["weights"]
    assert all(weights[name] > 0 for name in probs), weights
    fused = apply_fusion(fusion, probs)
    expected = (weights["text"] * probs["text"] + weights["baseline"] * probs["baseline"]) / (
        weights["text"] + weights["baseline"])
    np.testing.assert_allclose(fused[~has_image], expected[~has_image], rtol=1e-5)


@pytest.mark.parametrize("method", ["weighted", "stacking"])
def test_a_fusion_that_does_not_beat_the_best_member_serves_that_member(validation, method):
    _, labels, has_image = validation
    rng = np.random.default_rng(1)
    # A good text model beside two confidently wrong members: nothing beats text alone.
    text = noisy_probabilities(labels, 27, 3.0, rng)
    noise = {name: noisy_probabilities(rng.integers(0, 27, len(labels)), 27, 8.0, rng) for name in ("image", "baseline")}
    noise["image"][~has_image] = np.nan
    fusion, out_of_fold = fit_fusion({**PARAMS, "method": method}, {"text": text, **noise}, labels, FOLDS)
    assert fusion["method"] == "member" and fusion["member"] == "text"
    # The served member's out-of-fold probabilities are its own, not the losing fusion's.
    np.testing.assert_array_equal(out_of_fold, text)
    np.testing.assert_array_equal(apply_fusion(fusion, {"text": text}), text)
    assert members_used(fusion) == ["text"]


def test_zero_weight_members_are_not_needed_to_predict():
    fusion = {"method": "weighted", "weights": {"text": 0.6, "image": 0.0, "baseline": 0.4}, "fallback": "text"}
    assert members_used(fusion) == ["baseline", "text"]
    probs = {"text": np.eye(3)[[0, 1]], "baseline": np.eye(3)[[0, 2]]}
    np.testing.assert_allclose(apply_fusion(fusion, probs), [[1, 0, 0], [0, 0.6, 0.4]])


def test_out_of_fold_fusion_never_sees_the_labels_of_the_rows_it_predicts(validation):
    probs, labels, _ = validation
    settings = {**PARAMS, "method": "stacking"}
    held_out = cross_validated_probabilities(settings, probs, labels, FOLDS, "text")
    # Relabel fold 0 at random: only the fits that include fold 0 (the other folds' predictions) move.
    relabelled = labels.copy()
    relabelled[FOLDS == 0] = np.random.default_rng(5).integers(0, 27, int((FOLDS == 0).sum()))
    again = cross_validated_probabilities(settings, probs, relabelled, FOLDS, "text")
    np.testing.assert_array_equal(again[FOLDS == 0], held_out[FOLDS == 0])
    assert not np.allclose(again[FOLDS != 0], held_out[FOLDS != 0])


def test_auto_chooses_on_out_of_fold_scores_not_in_sample_ones():
    # Members whose probabilities carry no information: a stacking fitted on the same rows
    # memorises them, but out of fold it is at chance and must not be reported otherwise.
    # Their top class is always class 0, so both are below chance and neither is left out alone.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 27, size=600)
    probs = {name: noisy_probabilities(np.zeros(600, dtype=int), 27, 3.0, rng) for name in ("text", "baseline")}
    fusion, out_of_fold = fit_fusion({**PARAMS, "method": "stacking", "stacking_C": 100.0}, probs, labels, FOLDS)
    in_sample = fit_stacking(probs, labels, 100.0, 0)
    assert accuracy(apply_fusion(in_sample, probs), labels) > 0.2
    assert fusion["selection"]["candidates_cv_f1_weighted"]["text+baseline/stacking"] < 0.08
    assert accuracy(out_of_fold, labels) < 0.08


@pytest.mark.parametrize("informative", [True, False])
def test_a_member_scored_on_validation_rows_only_joins_only_if_it_helps_there(validation, informative):
    probs, labels, _ = validation
    rng = np.random.default_rng(4)
    is_validation = rng.random(600) < 0.3
    image = probs["image"] if informative else noisy_probabilities(rng.integers(0, 27, 600), 27, 2.0, rng)
    image = np.where(is_validation[:, None], image, np.nan)  # not cross-fitted: validation rows only
    fusion, out_of_fold = fit_fusion({**PARAMS, "method": "weighted"}, {**probs, "image": image}, labels, FOLDS,
                                     is_validation)
    selection = fusion["selection"]
    assert set(selection["candidates_cv_f1_weighted"]) == {"text+baseline/weighted/f1"}
    if informative:
        assert selection["members_fitted"] == ["text", "image", "baseline"]
        assert selection["fitted_rows"] == is_validation.sum() and np.isnan(out_of_fold[~is_validation]).all()
        assert weighted_f1(labels[is_validation], out_of_fold[is_validation].argmax(1)) > selection[
            "validation_rows_f1_weighted"]["text+baseline/weighted/f1"] + 0.05
    else:
        assert selection["members_fitted"] == ["text", "baseline"] and selection["fitted_rows"] == 600
        assert "image" not in members_used(fusion) and np.isfinite(out_of_fold).all()


def test_unknown_fusion_method_is_rejected(validation):
    probs, labels, _ = validation
    with pytest.raises(ValueError, match="train_fusion.method"):
        fit({**PARAMS, "method": "max"}, probs, labels)


def test_members_that_cannot_score_every_row_cannot_be_served_alone(validation):
    probs, labels, _ = validation
    with pytest.raises(ValueError, match="none scores every row"):
        fit({**PARAMS, "method": "weighted"}, {"image": probs["image"]}, labels)


def test_scores_on_a_known_case():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 0, 2, 1])
    scores = classification_scores(y_true, y_pred)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 0 -> 0.8, 1 -> 0.5, 2 -> 2/3; equal supports make weighted == macro.
    assert scores["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert scores["f1_weighted"] == pytest.approx(scores["f1_macro"])
    assert per_class_f1(y_true, y_pred, [10, 40, 50]) == pytest.approx({"10": 0.8, "40": 0.5, "50": 2 / 3})


@pytest.mark.parametrize("seed", range(5))
def test_weighted_f1_equals_scikit_learn_s(seed):
    rng = np.random.default_rng(seed)
    # Codes, not indices: some classes only predicted, some never predicted, some rare.
    y_true = rng.choice([10, 40, 50, 60, 1280, 2905], size=300, p=[0.4, 0.3, 0.2, 0.05, 0.04, 0.01])
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.choice([10, 40, 2583, 2905], size=300))
    expected = f1_score(y_true, y_pred, average="weighted", zero_division=0)
    assert weighted_f1(y_true, y_pred) == pytest.approx(expected, abs=1e-12)
    assert weighted_f1(y_true, y_true) == 1.0 and weighted_f1(y_true[:0], y_pred[:0]) == 0.0


@pytest.mark.parametrize("present", [[3, 20], [0, 4, 9, 13, 26]])
def test_stacking_serves_scaled_logistic_regression_probabilities(present):
    rng = np.random.default_rng(len(present))
    labels = rng.choice(present, size=300)
    image = noisy_probabilities(labels, 27, 1.0, rng)
    image[rng.random(300) < 0.2] = np.nan
    probs = {"text": noisy_probabilities(labels, 27, 1.5, rng), "image": image}
    fused = apply_fusion(fit_stacking(probs, labels, C=0.5, seed=0), probs)
    # The same model fitted by scikit-learn alone: a scaler, then the regression, on the same columns.
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, random_state=0))
    features = stacking_features(probs, ["text", "image"])
    expected = reference.fit(features, labels).predict_proba(features)
    np.testing.assert_allclose(fused[:, present], expected, atol=2e-4)
    # Classes the validation rows never showed are never predicted.
    assert fused[:, np.setdiff1d(np.arange(27), present)].max() < 1e-6


def test_a_member_below_chance_is_left_out_of_the_fusion(validation):
    probs, labels, has_image = validation
    rng = np.random.default_rng(5)
    # Near-uniform probabilities whose top class is always wrong: what an image CNN trained from
    # scratch on a few photos a class gives on real products (test F1 below 1/27).
    wrong = noisy_probabilities((labels + 1) % 27, 27, 0.3, rng)
    wrong[~has_image] = np.nan
    assert weighted_f1(labels[has_image], wrong[has_image].argmax(1)) < 1 / 27
    fusion = fit({**PARAMS, "method": "weighted", "weight_objective": "log_loss"}, {**probs, "image": wrong}, labels)
    assert fusion["selection"]["uninformative_members"] == ["image"]
    assert "image" not in members_used(fusion) and "image" not in fusion["weights"]
    # A member above chance stays a candidate.
    kept = fit({**PARAMS, "method": "weighted"}, probs, labels)
    assert kept["selection"]["uninformative_members"] == [] and "image" in kept["weights"]


def one_hot_answers(labels: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Probabilities that put everything on the true class where correct, on the next class elsewhere."""
    answers = np.where(correct, labels, (labels + 1) % 27)
    return np.eye(27, dtype=np.float32)[answers]


@pytest.mark.parametrize("net_gain, margin, expected", [(4, 2.0, "incumbent"), (4, 0.0, "challenger"),
                                                        (60, 2.0, "challenger")])
def test_a_challenger_replaces_the_incumbent_only_on_a_gain_larger_than_the_margin(net_gain, margin, expected):
    labels = np.arange(400) % 27
    incumbent = np.arange(400) < 300  # right on rows 0-299
    challenger = incumbent.copy()
    challenger[:36] = False  # wrong on 36 rows the incumbent gets right...
    challenger[300:336 + net_gain] = True  # ...right on 36 + net_gain rows it gets wrong
    scored = {"incumbent": one_hot_answers(labels, incumbent), "challenger": one_hot_answers(labels, challenger)}
    assert significant_winner("incumbent", scored, labels, margin) == expected
