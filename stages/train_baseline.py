"""Stage `train_baseline`: the TF-IDF + linear SVM reference, fitted once per change of its params.

Kept apart from evaluate so that sweeping fusion or a head does not refit it.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.features.text import model_input_texts
from rakuten_mm.models.baseline import build_baseline
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_baseline")


def main() -> None:
    """Fit the baseline on the train rows; save its validation and test predictions (class indices)."""
    params, args = start_stage("train_baseline", ["dataset", "split", "predictions"], "Train the baseline.")
    p = params["train_baseline"]
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    split = pd.read_csv(args.split, index_col="row")
    texts = np.asarray(model_input_texts(table["title"], table["description"],
                                         params["train_text"]["max_description_chars"]), dtype=object)
    labels = table["label"].to_numpy()
    train = rows_of(split, "train")
    baseline = build_baseline(p).fit(texts[train], labels[train])
    out = Path(args.predictions)
    out.mkdir(parents=True, exist_ok=True)
    with StageLive("train_baseline") as live:
        live.log_params(p)
        for name in ("val", "test"):
            rows = rows_of(split, name)
            predicted = baseline.predict(texts[rows]).astype(np.int32)
            np.save(out / f"{name}.npy", predicted)
            scores = log_split_scores(live, name, labels[rows], predicted)
            log.info("%s weighted F1 %.4f", name, scores["f1_weighted"])


if __name__ == "__main__":
    main()
