"""Stage `evaluate`: score text, image, fusion and the classical baseline on the test split."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import CODES
from rakuten_mm.data.dataset import load_images, read_split_table, rows_of
from rakuten_mm.evaluation.latency import per_item_latency_ms
from rakuten_mm.evaluation.live import StageLive
from rakuten_mm.evaluation.metrics import classification_scores, per_class_f1
from rakuten_mm.models.io import write_json
from rakuten_mm.models.predictor import ProductClassifier
from rakuten_mm.stage import start_stage

log = logging.getLogger("evaluate")


def predict_rows(classifier: ProductClassifier, table: pd.DataFrame, images: np.ndarray, rows) -> dict:
    """Text, image and fused probabilities of some rows of a cleaned split."""
    part = table.iloc[rows]
    return classifier.predict_proba(part["title"], part["description"], images[rows], part["has_image"].to_numpy())


def score_all(live: StageLive, labels: np.ndarray, probs: dict, has_image: np.ndarray, baseline: np.ndarray) -> dict:
    """Log accuracy and F1 of every model; the image model is scored on rows with an image."""
    predictions = {"text": probs["text"].argmax(1), "fusion": probs["fused"].argmax(1), "baseline": baseline}
    scores = {name: classification_scores(labels, pred) for name, pred in predictions.items()}
    scores["image"] = classification_scores(labels[has_image], probs["image"][has_image].argmax(1))
    scores["image"]["coverage"] = float(has_image.mean())
    for model, values in scores.items():
        for metric, value in values.items():
            live.log_metric(f"{model}/{metric}", value, plot=False)
    for code, value in per_class_f1(labels, predictions["fusion"], CODES).items():
        live.log_metric(f"per_class_f1/{code}", value, plot=False)
    codes = np.asarray(CODES)
    live.log_sklearn_plot("confusion_matrix", codes[labels].tolist(), codes[predictions["fusion"]].tolist(),
                          name="confusion_matrix", title="Fusion on the test split")
    return scores


def write_predictions(out: Path, test: pd.DataFrame, test_fused: np.ndarray, unlabelled: pd.DataFrame,
                      unlabelled_fused: np.ndarray) -> None:
    """Test-split predictions with fused probabilities, and the challenge submission for X_test."""
    out.mkdir(parents=True, exist_ok=True)
    codes = np.asarray(CODES)
    frame = pd.DataFrame({"prdtypecode": test["prdtypecode"].to_numpy(),
                          "predicted": codes[test_fused.argmax(1)]}, index=test.index)
    frame.to_csv(out / "test_predictions.csv")
    np.save(out / "test_fused_probabilities.npy", test_fused)
    submission = pd.DataFrame({"prdtypecode": codes[unlabelled_fused.argmax(1)]}, index=unlabelled.index)
    submission.index.name = None
    submission.to_csv(out / "submission.csv")


def main() -> None:
    """Score every model on the test split, write predictions, metrics and latency."""
    params, args = start_stage("evaluate", ["dataset", "split", "models", "baseline", "predictions", "latency"],
                               "Evaluate.")
    p, dataset = params["evaluate"], Path(args.dataset)
    table, images = read_split_table(dataset / "labelled.csv"), load_images(dataset / "labelled_images.npy")
    unlabelled = read_split_table(dataset / "unlabelled.csv")
    unlabelled_images = load_images(dataset / "unlabelled_images.npy")
    split = pd.read_csv(args.split, index_col="row")
    test_rows = rows_of(split, "test")
    classifier = ProductClassifier(args.models)
    probs = predict_rows(classifier, table, images, test_rows)
    labels, has_image = table["label"].to_numpy()[test_rows], table["has_image"].to_numpy()[test_rows]
    baseline = np.load(Path(args.baseline) / "test.npy")
    with StageLive("evaluate") as live:
        scores = score_all(live, labels, probs, has_image, baseline)
    log.info("test scores: %s", {k: round(v["f1_weighted"], 4) for k, v in scores.items()})
    unlabelled_probs = predict_rows(classifier, unlabelled, unlabelled_images, np.arange(len(unlabelled)))
    write_predictions(Path(args.predictions), table.iloc[test_rows], probs["fused"], unlabelled, unlabelled_probs["fused"])
    latency = {f"batch_{size}": per_item_latency_ms(lambda rows: predict_rows(classifier, table, images, test_rows[rows]),
                                                    len(test_rows), size, p["latency"]["repeats"])
               for size in p["latency"]["batch_sizes"]}
    write_json(latency, args.latency)
    log.info("latency: %s", latency)


if __name__ == "__main__":
    main()
