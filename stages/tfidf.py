"""Stage `tfidf`: fit the word + character tf-idf featurizer on the train (+ validation) rows, featurize every labelled product.

tfidf.fit_on: train_val (default) fits the vocabulary and idf on train + validation rows, the rows
the served members are refitted on: the featurizer is unsupervised, and on small data the
validation rows bring many terms. The cross-fitting fold models then read columns whose idf saw
their held-out fold's texts (not its labels): a small, documented leak into out-of-fold scores.

The text model's tf-idf head and the linear baseline both read these rows, so sweeping either
one's params never featurizes again; the API featurizes a request once, with the saved featurizer.
"""

import logging
import time
from pathlib import Path

import pandas as pd

from rakuten_mm.data.dataset import read_split_table
from rakuten_mm.features.text import model_input_texts
from rakuten_mm.features.tfidf import TfidfFeaturizer, featurizer_rows, save_features
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.stage import start_stage

log = logging.getLogger("tfidf")


def main() -> None:
    """Fit on the train (+ validation) texts; write the featurizer and the CSR rows of all labelled products."""
    params, args = start_stage("tfidf", ["dataset", "split", "features", "model"], "Fit the tf-idf featurizer.")
    p = params["tfidf"]
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    split = pd.read_csv(args.split, index_col="row")
    texts = model_input_texts(table["title"], table["description"], p["max_description_chars"], p["title_repeats"])
    started = time.perf_counter()
    featurizer, features = TfidfFeaturizer.fit_transform(texts, featurizer_rows(split, p["fit_on"]), p)
    log.info("featurized %d products in %.1f s: %d columns, %.0f non-zeros a row", len(texts),
             time.perf_counter() - started, features.shape[1], features.nnz / max(len(texts), 1))
    save_features(features, Path(args.features) / "labelled.npz")
    featurizer.save(Path(args.model) / "featurizer.skops")
    write_json({key: p[key] for key in ("max_description_chars", "title_repeats")},
               Path(args.model) / "preprocessing.json")


if __name__ == "__main__":
    main()
