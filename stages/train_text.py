"""Stage `train_text`: fit the Keras text classifier, save it and its val/test probabilities."""

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import EpochLogger, StageLive, log_split_scores
from rakuten_mm.features.text import model_input_texts
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.classes import write_classes
from rakuten_mm.models.determinism import set_determinism
from rakuten_mm.models.device import device_summary
from rakuten_mm.models.keras_files import save_keras_model
from rakuten_mm.models.text import (
    adapt_vectorizers, assemble_text_model, build_featurizer, build_text_head, text_tensor, vectorize,
)
from rakuten_mm.models.training import (
    array_batches, class_weights, fit_classifier, predict_probabilities, training_batch_size,
)
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_text")
SPLITS = ("train", "val", "test")


def texts_and_labels(table: pd.DataFrame, rows: np.ndarray, max_chars: int) -> tuple[list[str], np.ndarray]:
    """Model input strings and class indices of the given rows."""
    part = table.iloc[rows]
    return model_input_texts(part["title"], part["description"], max_chars), part["label"].to_numpy(np.int32)


def main() -> None:
    """Train the text model, then save it and its validation and test probabilities."""
    params, args = start_stage("train_text", ["dataset", "split", "model", "probs"], "Train the text model.")
    p = params["train_text"]
    set_determinism(p["seed"])
    device = device_summary(p["mixed_precision"])
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    split = pd.read_csv(args.split, index_col="row")
    texts, labels = {}, {}
    for name in SPLITS:
        texts[name], labels[name] = texts_and_labels(table, rows_of(split, name), p["max_description_chars"])
    started = time.perf_counter()
    featurizer = build_featurizer(adapt_vectorizers(p["model"], texts["train"], p))
    # Vectorise once: string n-gram work per batch and epoch would dominate training time.
    vectors = {name: vectorize(featurizer, texts[name]) for name in ("train", "val")}
    log.info("features: %s; vectorised in %.1f s", vectors["train"].shape, time.perf_counter() - started)
    batch_size = training_batch_size(len(labels["train"]), p)
    batches = {name: array_batches(vectors[name], np.arange(len(labels[name])), labels[name], batch_size,
                                   shuffle_seed=p["seed"] if name == "train" else None) for name in ("train", "val")}
    head = build_text_head(p["model"], p, featurizer, N_CLASSES)
    head.summary(print_fn=log.info)
    probs = Path(args.probs)
    probs.mkdir(parents=True, exist_ok=True)
    with StageLive("train_text") as live:
        live.log_params({**p, **device, "effective_batch_size": batch_size})
        live.log_metric("device/gpus", device["gpus"], plot=False)
        fit_classifier(head, batches["train"], batches["val"], labels["val"], p,
                       class_weights(labels["train"], N_CLASSES, p["class_weights"]),
                       [EpochLogger(live, len(labels["train"]))])
        model = assemble_text_model(featurizer, head)
        for name in ("val", "test"):
            proba = predict_probabilities(model, text_tensor(texts[name]), p["batch_size"])
            np.save(probs / f"{name}.npy", proba)
            log_split_scores(live, name, labels[name], proba.argmax(1))
    save_keras_model(model, Path(args.model) / "model.keras")
    write_classes(args.model)
    write_json({"max_description_chars": p["max_description_chars"]}, Path(args.model) / "preprocessing.json")


if __name__ == "__main__":
    main()
