"""Late fusion of text and image probabilities, fitted on validation rows only."""

import numpy as np
from sklearn.linear_model import LogisticRegression

from rakuten_mm.evaluation.metrics import weighted_f1

FUSION_METHODS = ("weighted", "stacking")
_EPS = 1e-7


def weighted_average(text: np.ndarray, image: np.ndarray, has_image: np.ndarray, text_weight: float) -> np.ndarray:
    """text_weight·text + (1 − text_weight)·image, and text alone where there is no image."""
    fused = text_weight * text + (1.0 - text_weight) * image
    return np.where(has_image[:, None], fused, text).astype(np.float32)


def fit_weighted(text, image, has_image, labels, grid_step: float) -> dict:
    """Pick the text weight that maximises weighted F1 on the given (validation) rows."""
    grid = np.round(np.arange(0.0, 1.0 + grid_step / 2, grid_step), 6)
    scores = [weighted_f1(labels, weighted_average(text, image, has_image, w).argmax(1)) for w in grid]
    best = int(np.argmax(scores))
    return {"method": "weighted", "text_weight": float(grid[best]), "validation_f1_weighted": float(scores[best])}


def stacking_features(text: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Log-probabilities of both models side by side."""
    return np.log(np.concatenate([text, image], axis=1) + _EPS)


def fit_stacking(text, image, has_image, labels, C: float, seed: int) -> dict:
    """Multinomial logistic regression on both models' log-probabilities, rows with an image only."""
    n_classes = text.shape[1]
    if len(np.unique(labels[has_image])) < 2:
        raise ValueError("stacking needs validation rows with images from at least two classes")
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    model.fit(stacking_features(text[has_image], image[has_image]), labels[has_image])
    # A class absent from the validation rows keeps a huge negative bias: never predicted.
    coef = np.zeros((n_classes, 2 * n_classes))
    intercept = np.full(n_classes, -1e4)
    coef[model.classes_] = model.coef_
    intercept[model.classes_] = model.intercept_
    return {"method": "stacking", "coef": coef.tolist(), "intercept": intercept.tolist(), "C": C}


def apply_fusion(fusion: dict, text: np.ndarray, image: np.ndarray, has_image: np.ndarray) -> np.ndarray:
    """Fused class probabilities; rows without an image fall back to the text model."""
    # Rows without an image carry NaN image probabilities; any finite filler is discarded below.
    image = np.where(has_image[:, None], image, text)
    if fusion["method"] == "weighted":
        return weighted_average(text, image, has_image, fusion["text_weight"])
    if fusion["method"] == "stacking":
        logits = stacking_features(text, image) @ np.asarray(fusion["coef"]).T + np.asarray(fusion["intercept"])
        logits -= logits.max(axis=1, keepdims=True)
        stacked = np.exp(logits)
        stacked /= stacked.sum(axis=1, keepdims=True)
        return np.where(has_image[:, None], stacked, text).astype(np.float32)
    raise ValueError(f"train_fusion.method must be one of {FUSION_METHODS}, got {fusion['method']!r}")


def fit_fusion(params: dict, text, image, has_image, labels) -> dict:
    """Fit the fusion method named in params on validation probabilities."""
    if params["method"] == "weighted":
        return fit_weighted(text, image, has_image, labels, params["weight_grid_step"])
    if params["method"] == "stacking":
        return fit_stacking(text, image, has_image, labels, params["stacking_C"], params["seed"])
    raise ValueError(f"train_fusion.method must be one of {FUSION_METHODS}, got {params['method']!r}")
