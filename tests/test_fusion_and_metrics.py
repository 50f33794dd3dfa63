import numpy as np
import pytest

from rakuten_mm.evaluation.metrics import classification_scores, per_class_f1
from rakuten_mm.models.fusion import apply_fusion, fit_fusion


def noisy_probabilities(labels, n_classes, strength, rng):
    logits = rng.normal(size=(len(labels), n_classes))
    logits[np.arange(len(labels)), labels] += strength
    probs = np.exp(logits)
    return (probs / probs.sum(1, keepdims=True)).astype(np.float32)


@pytest.fixture
def validation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=400)
    has_image = rng.random(400) > 0.1
    image = noisy_probabilities(labels, 5, 1.5, rng)
    image[~has_image] = np.nan
    return {"text": noisy_probabilities(labels, 5, 1.5, rng), "image": image, "has_image": has_image, "labels": labels}


PARAMS = {"weight_grid_step": 0.1, "stacking_C": 1.0, "seed": 0}


@pytest.mark.parametrize("method", ["weighted", "stacking"])
def test_fusion_beats_each_model_when_errors_are_independent(validation, method):
    v = validation
    fusion = fit_fusion({**PARAMS, "method": method}, v["text"], v["image"], v["has_image"], v["labels"])
    fused = apply_fusion(fusion, v["text"], v["image"], v["has_image"])
    assert np.isfinite(fused).all() and np.allclose(fused.sum(1), 1, atol=1e-4)
    text_acc = (v["text"].argmax(1) == v["labels"]).mean()
    assert (fused.argmax(1) == v["labels"]).mean() > text_acc + 0.05


def test_rows_without_image_fall_back_to_text(validation):
    v = validation
    for method in ("weighted", "stacking"):
        fusion = fit_fusion({**PARAMS, "method": method}, v["text"], v["image"], v["has_image"], v["labels"])
        fused = apply_fusion(fusion, v["text"], v["image"], v["has_image"])
        np.testing.assert_array_equal(fused[~v["has_image"]], v["text"][~v["has_image"]])


def test_unknown_fusion_method_is_rejected(validation):
    with pytest.raises(ValueError, match="train_fusion.method"):
        fit_fusion({**PARAMS, "method": "max"}, *validation.values())


def test_scores_on_a_known_case():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 0, 2, 1])
    scores = classification_scores(y_true, y_pred)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 0 -> 0.8, 1 -> 0.5, 2 -> 2/3; equal supports make weighted == macro.
    assert scores["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert scores["f1_weighted"] == pytest.approx(scores["f1_macro"])
    assert per_class_f1(y_true, y_pred, [10, 40, 50]) == pytest.approx({"10": 0.8, "40": 0.5, "50": 2 / 3})
