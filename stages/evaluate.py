"""Stage `evaluate`: score every member model and the served fusion on the validation and test splits.

Validation scores are out of fold (the cross-fitting stages' saved predictions); test scores are
the served (refitted) models' own predictions.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import CODES
from rakuten_mm.data.dataset import load_images, read_split_table, rows_of
from rakuten_mm.evaluation.latency import per_item_latency_ms
from rakuten_mm.evaluation.live import StageLive
from rakuten_mm.evaluation.metrics import (
    classification_scores, per_class_f1, review_curve_on_grid, review_scores, review_scores_per_class,
)
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.fusion import members_used
from rakuten_mm.models.predictor import MEMBERS, ProductClassifier
from rakuten_mm.stage import start_stage

log = logging.getLogger("evaluate")


def predict_rows(classifier: ProductClassifier, table: pd.DataFrame, images: np.ndarray, rows) -> dict:
    """Text, image and fused probabilities of some rows of a cleaned split."""
    part = table.iloc[rows]
    return classifier.predict_proba(part["title"], part["description"], images[rows], part["has_image"].to_numpy())


def score_split(live: StageLive, split: str, labels: np.ndarray, predicted: dict, has_image: np.ndarray) -> dict:
    """Log accuracy and F1 of every member and of the fusion; the image model on rows with an image."""
    scores = {}
    for name, classes in predicted.items():
        rows = has_image if name == "image" else np.ones(len(labels), dtype=bool)
        scores[name] = classification_scores(labels[rows], classes[rows])
    if "image" in scores:
        scores["image"]["coverage"] = float(has_image.mean())
    for model, values in scores.items():
        for metric, value in values.items():
            live.log_metric(f"{split}/{model}/{metric}", value, plot=False)
    return scores


def validation_classes(probs_dir: Path, fusion_params: dict) -> dict:
    """Each member's and the fusion's validation classes, all out of fold (data/probs/<name>/val.npy)."""
    # The served members are refitted on train + validation: scored on those rows they would be
    # in-sample. The cross-fitting stages saved each validation row's prediction by a model (and
    # a fusion) that never saw it.
    names = [*fusion_params["members"], "fusion"]
    return {name: np.nan_to_num(np.load(probs_dir / name / "val.npy"), nan=-1.0).argmax(1) for name in names}


def log_test_details(live: StageLive, labels: np.ndarray, fused: np.ndarray) -> None:
    """Per-class F1 and the confusion matrix of the served fusion on the test split."""
    predicted = fused.argmax(1)
    for code, value in per_class_f1(labels, predicted, CODES).items():
        live.log_metric(f"per_class_f1/{code}", value, plot=False)
    codes = np.asarray(CODES)
    live.log_sklearn_plot("confusion_matrix", codes[labels].tolist(), codes[predicted].tolist(),
                          name="confusion_matrix", title="Fusion on the test split")


def log_review(live: StageLive, review: dict, out_of_fold: dict, test_labels: np.ndarray,
               test_fused: np.ndarray) -> dict:
    """Coverage and precision at the served threshold: validation (out of fold) and test, per predicted class."""
    scores = {"val": review_scores(out_of_fold["probabilities"], out_of_fold["labels"], review["threshold"]),
              "test": review_scores(test_fused, test_labels, review["threshold"])}
    live.log_metric("review/threshold", review["threshold"], plot=False)
    for split, values in scores.items():
        for name in ("coverage", "precision"):
            if values[name] is not None:
                live.log_metric(f"{split}/review/{name}", values[name], plot=False)
    for code, values in review_scores_per_class(test_fused, test_labels, review["threshold"], CODES).items():
        for name in ("coverage", "precision"):
            if values[name] is not None:  # a class the model never predicts on the test split
                live.log_metric(f"review_per_class/{code}/{name}", values[name], plot=False)
    return scores


def write_review_curve(path: Path, step: float, out_of_fold: dict, test_labels: np.ndarray,
                       test_fused: np.ndarray) -> None:
    """Precision and coverage against the threshold, validation (out of fold) and test: the DVC plot's data."""
    thresholds = np.round(np.arange(0.0, 1.0 + step / 2, step), 6)
    curves = {"val": review_curve_on_grid(out_of_fold["probabilities"], out_of_fold["labels"], thresholds),
              "test": review_curve_on_grid(test_fused, test_labels, thresholds)}
    frame = pd.DataFrame({"threshold": thresholds})
    for split, curve in curves.items():
        for name, values in curve.items():
            frame[f"{split}_{name}"] = pd.Series(values, dtype=float).round(6)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def served_review(fusion: dict) -> dict:
    """The review rule saved with the served fusion by train_fusion."""
    if "review" not in fusion:
        raise SystemExit("models/fusion/fusion.json has no review threshold: rerun train_fusion")
    return fusion["review"]


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


def served_classifier(every_member: ProductClassifier, models: str) -> ProductClassifier:
    """What the API loads: only the members the fusion uses (its latency is the one that matters)."""
    # When the fusion uses every member, that is the classifier already loaded: loading the
    # models again would cost a third of the stage (the baseline's safe unpickling above all).
    if set(members_used(every_member.fusion)) == set(every_member.members):
        return every_member
    return ProductClassifier(models)


def main() -> None:
    """Score every model on the validation and test splits, write predictions, metrics and latency."""
    params, args = start_stage("evaluate", ["dataset", "split", "models", "probs", "predictions", "latency",
                                            "review-curve"],
                               "Evaluate.")
    p, dataset = params["evaluate"], Path(args.dataset)
    table, images = read_split_table(dataset / "labelled.csv"), load_images(dataset / "labelled_images.npy")
    unlabelled = read_split_table(dataset / "unlabelled.csv")
    unlabelled_images = load_images(dataset / "unlabelled_images.npy")
    split = pd.read_csv(args.split, index_col="row")
    every_member = ProductClassifier(args.models, members=list(MEMBERS))
    labels, has_image = table["label"].to_numpy(), table["has_image"].to_numpy()
    test_rows, val_rows = rows_of(split, "test"), rows_of(split, "val")
    test_probs = predict_rows(every_member, table, images, test_rows)
    predicted = {"val": validation_classes(Path(args.probs), params["train_fusion"]),
                 "test": {"fusion" if n == "fused" else n: proba.argmax(1) for n, proba in test_probs.items()}}
    with StageLive("evaluate") as live:
        for name, rows in (("val", val_rows), ("test", test_rows)):
            scores = score_split(live, name, labels[rows], predicted[name], has_image[rows])
            log.info("%s scores: %s", name, {k: round(v["f1_weighted"], 4) for k, v in scores.items()})
        log_test_details(live, labels[test_rows], test_probs["fused"])
        # The served fusion's out-of-fold probabilities: the rows train_fusion chose the threshold on.
        out_of_fold = dict(np.load(Path(args.probs) / "fusion" / "oof.npz"))
        review = served_review(every_member.fusion)
        review_split_scores = log_review(live, review, out_of_fold, labels[test_rows], test_probs["fused"])
    log.info("review threshold %.4f: %s", review["threshold"], review_split_scores)
    write_review_curve(Path(args.review_curve), p["review_curve_step"], out_of_fold, labels[test_rows],
                       test_probs["fused"])
    served = served_classifier(every_member, args.models)
    unlabelled_probs = predict_rows(served, unlabelled, unlabelled_images, np.arange(len(unlabelled)))
    write_predictions(Path(args.predictions), table.iloc[test_rows], test_probs["fused"], unlabelled,
                      unlabelled_probs["fused"])
    latency = {f"batch_{size}": per_item_latency_ms(lambda rows: predict_rows(served, table, images, test_rows[rows]),
                                                    len(test_rows), size, p["latency"]["repeats"])
               for size in p["latency"]["batch_sizes"]}
    write_json(latency, args.latency)
    log.info("latency: %s", latency)


if __name__ == "__main__":
    main()
