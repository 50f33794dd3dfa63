"""Stage `train_text`: fit the Keras text classifier, save it, its out-of-fold and test probabilities."""

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.features.text import model_input_texts
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.classes import write_classes
from rakuten_mm.models.crossfit import validation_mask, write_member_probs
from rakuten_mm.models.determinism import set_determinism
from rakuten_mm.models.device import device_summary
from rakuten_mm.models.encoder import PresetUnavailableError
from rakuten_mm.models.keras_files import save_keras_model
from rakuten_mm.models.text_training import (
    SPLITS, encoder_training, out_of_fold_and_served, sequence_training, tfidf_training,
)
from rakuten_mm.models.training import EpochLogger, class_weights, fit_classifier
from rakuten_mm.params import ENCODER_MODEL, uses_cached_embeddings
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_text")


def texts_and_labels(table: pd.DataFrame, rows: np.ndarray, max_chars: int) -> tuple[list[str], np.ndarray]:
    """Model input strings and class indices of the given rows."""
    part = table.iloc[rows]
    return model_input_texts(part["title"], part["description"], max_chars), part["label"].to_numpy(np.int32)


def training_parts(p: dict, texts: dict, labels: dict, rows: dict, args) -> dict:
    """What to fit for train_text.model (text_training's parts), once its inputs are known to be passed."""
    try:
        if p["model"] == ENCODER_MODEL:
            if uses_cached_embeddings(p) and not (args.features and args.encoder):
                raise SystemExit("train_text.model=encoder with trainable: false reads the text_features stage's "
                                 "outputs: pass --features and --encoder (see dvc.yaml)")
            return encoder_training(p, texts, labels, rows, args.features, args.encoder)
        if p["model"] == "tfidf":
            if not (args.tfidf and Path(args.tfidf, "labelled.npz").is_file()):
                raise SystemExit("train_text.model=tfidf reads the tfidf stage's rows: pass --tfidf (see dvc.yaml)")
            return tfidf_training(p, labels, rows, args.tfidf)
        return sequence_training(p, texts, labels)
    except PresetUnavailableError as error:
        log.error("%s", error)
        sys.exit(1)


def main() -> None:
    """Train the text model, then save it and its validation and test probabilities."""
    params, args = start_stage("train_text", ["dataset", "split", "model", "probs"], "Train the text model.",
                               optional_paths=("features", "encoder", "tfidf"))
    p = params["train_text"]
    set_determinism(p["seed"])
    device = device_summary(p["mixed_precision"])
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    split = pd.read_csv(args.split, index_col="row")
    rows = {name: rows_of(split, name) for name in SPLITS}
    texts, labels = {}, {}
    for name in SPLITS:
        texts[name], labels[name] = texts_and_labels(table, rows[name], p["max_description_chars"])
    parts = training_parts(p, texts, labels, rows, args)
    parts["fitted"].summary(print_fn=log.info)
    probs = Path(args.probs)
    with StageLive("train_text") as live:
        live.log_params({**p, **device, "effective_batch_size": parts["batch_size"]})
        live.log_metric("device/gpus", device["gpus"], plot=False)
        history = fit_classifier(parts["fitted"], parts["batches"]["train"], parts["batches"]["val"],
                                 labels["val"], parts["params"],
                                 class_weights(labels["train"], N_CLASSES, p["class_weights"]),
                                 [EpochLogger(live, len(labels["train"]))])
        model, out_of_fold, test_probs = out_of_fold_and_served(parts, p, history, table, split, texts)
        validation = validation_mask(split)
        write_member_probs(probs, out_of_fold, validation, test_probs)
        # Validation: out-of-fold rows (the served model may have seen them); test: the served model.
        log_split_scores(live, "val", labels["val"], out_of_fold[validation].argmax(1))
        log_split_scores(live, "test", labels["test"], test_probs.argmax(1))
    save_keras_model(model, Path(args.model) / "model.keras")
    write_classes(args.model)
    # The served model's input: the tfidf stage's rows, or raw strings cut at max_description_chars.
    preprocessing = ({"input": "tfidf"} if p["model"] == "tfidf"
                     else {"input": "text", "max_description_chars": p["max_description_chars"]})
    write_json(preprocessing, Path(args.model) / "preprocessing.json")


if __name__ == "__main__":
    main()
