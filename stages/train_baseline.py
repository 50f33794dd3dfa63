"""Stage `train_baseline`: the calibrated linear SVM member on the tfidf stage's rows, fitted once per change of its params.

Kept apart from the other training stages so that sweeping them or the fusion never refits it.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.features.tfidf import load_features
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.baseline import baseline_probabilities, build_baseline
from rakuten_mm.models.classes import write_classes
from rakuten_mm.models.sklearn_files import save_sklearn_model
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_baseline")


def main() -> None:
    """Fit the baseline on the train rows; save it and its validation and test probabilities."""
    params, args = start_stage("train_baseline", ["dataset", "split", "tfidf", "model", "probs"],
                               "Train the baseline.")
    p = params["train_baseline"]
    labels = read_split_table(Path(args.dataset) / "labelled.csv")["label"].to_numpy()
    split = pd.read_csv(args.split, index_col="row")
    features = load_features(Path(args.tfidf) / "labelled.npz")
    train = rows_of(split, "train")
    baseline = build_baseline(p).fit(features[train], labels[train])
    out = Path(args.probs)
    out.mkdir(parents=True, exist_ok=True)
    with StageLive("train_baseline") as live:
        live.log_params(p)
        for name in ("val", "test"):
            rows = rows_of(split, name)
            proba = baseline_probabilities(baseline, features[rows], N_CLASSES)
            np.save(out / f"{name}.npy", proba)
            scores = log_split_scores(live, name, labels[rows], proba.argmax(1))
            log.info("%s weighted F1 %.4f", name, scores["f1_weighted"])
    save_sklearn_model(baseline, Path(args.model) / "model.skops")
    write_classes(args.model)
    write_json({"input": "tfidf"}, Path(args.model) / "preprocessing.json")


if __name__ == "__main__":
    main()
