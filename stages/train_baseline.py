"""Stage `train_baseline`: the calibrated linear SVM member on the tfidf stage's rows, fitted once per change of its params.

Kept apart from the other training stages so that sweeping them or the fusion never refits it.
Cross-fitted over the split's folds (out-of-fold probabilities of every train + validation row),
its softmax temperature fitted once on those out-of-fold scores, then refitted on train +
validation (train_baseline.refit) with C and the temperature frozen: the served model.
"""

import logging
from pathlib import Path

import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.features.tfidf import load_features
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.baseline import (
    baseline_probabilities, fit_temperature, out_of_fold_scores, scores_to_probabilities, served_baseline,
)
from rakuten_mm.models.classes import write_classes
from rakuten_mm.models.crossfit import fitting_folds, fitting_rows, validation_mask, write_member_probs
from rakuten_mm.models.sklearn_files import save_sklearn_model
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_baseline")


def main() -> None:
    """Cross-fit the baseline, fit its temperature out of fold, refit it; save it and its probabilities."""
    params, args = start_stage("train_baseline", ["dataset", "split", "tfidf", "model", "probs"],
                               "Train the baseline.")
    p = params["train_baseline"]
    labels = read_split_table(Path(args.dataset) / "labelled.csv")["label"].to_numpy()
    split = pd.read_csv(args.split, index_col="row")
    features = load_features(Path(args.tfidf) / "labelled.npz")
    fitting, validation = fitting_rows(split), validation_mask(split)
    scores = out_of_fold_scores(p, features[fitting], labels[fitting], fitting_folds(split), N_CLASSES)
    temperature = fit_temperature(scores, labels[fitting])
    out_of_fold = scores_to_probabilities(scores, temperature)
    baseline = served_baseline(p, features, labels, rows_of(split, "train"), fitting, temperature)
    test = rows_of(split, "test")
    test_probs = baseline_probabilities(baseline, features[test], N_CLASSES)
    write_member_probs(args.probs, out_of_fold, validation, test_probs)
    with StageLive("train_baseline") as live:
        live.log_params(p)
        live.log_metric("temperature", temperature, plot=False)
        # Validation: out-of-fold (the served model saw those rows when refitted); test: the served model.
        for name, rows, proba in (("val", fitting[validation], out_of_fold[validation]), ("test", test, test_probs)):
            scores = log_split_scores(live, name, labels[rows], proba.argmax(1))
            log.info("%s weighted F1 %.4f", name, scores["f1_weighted"])
    save_sklearn_model(baseline, Path(args.model) / "model.skops")
    write_classes(args.model)
    write_json({"input": "tfidf"}, Path(args.model) / "preprocessing.json")


if __name__ == "__main__":
    main()
