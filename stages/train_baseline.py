"""Stage `train_baseline`: the TF-IDF + calibrated linear SVM member, fitted once per change of its params.

Kept apart from the other training stages so that sweeping them or the fusion never refits it.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.features.text import model_input_texts
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.baseline import baseline_probabilities, build_baseline, compact_for_saving
from rakuten_mm.models.classes import write_classes
from rakuten_mm.models.sklearn_files import save_sklearn_model
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_baseline")


def main() -> None:
    """Fit the baseline on the train rows; save it and its validation and test probabilities."""
    params, args = start_stage("train_baseline", ["dataset", "split", "model", "probs"], "Train the baseline.")
    p = params["train_baseline"]
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    split = pd.read_csv(args.split, index_col="row")
    texts = np.asarray(model_input_texts(table["title"], table["description"], p["max_description_chars"]),
                       dtype=object)
    labels = table["label"].to_numpy()
    train = rows_of(split, "train")
    baseline = build_baseline(p).fit(texts[train], labels[train])
    out = Path(args.probs)
    out.mkdir(parents=True, exist_ok=True)
    with StageLive("train_baseline") as live:
        live.log_params(p)
        for name in ("val", "test"):
            rows = rows_of(split, name)
            proba = baseline_probabilities(baseline, texts[rows], N_CLASSES)
            np.save(out / f"{name}.npy", proba)
            scores = log_split_scores(live, name, labels[rows], proba.argmax(1))
            log.info("%s weighted F1 %.4f", name, scores["f1_weighted"])
    # Last, after predicting: transform() writes the stop-word id back.
    save_sklearn_model(compact_for_saving(baseline), Path(args.model) / "model.skops")
    write_classes(args.model)
    write_json({"max_description_chars": p["max_description_chars"]}, Path(args.model) / "preprocessing.json")


if __name__ == "__main__":
    main()
