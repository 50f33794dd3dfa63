"""Stage `train_text`: fit the Keras text classifier, save it, its out-of-fold and test probabilities."""

import logging
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.features.text import model_input_texts
from rakuten_mm.features.tfidf import load_features
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.classes import write_classes
from rakuten_mm.models.crossfit import held_out_only, validation_mask, write_member_probs
from rakuten_mm.models.determinism import set_determinism
from rakuten_mm.models.device import device_summary
from rakuten_mm.models.encoder import (
    ENCODER_MODEL, PresetUnavailableError, build_encoder_head, build_text_encoder, load_text_model, string_batches,
    uses_cached_embeddings,
)
from rakuten_mm.models.keras_files import save_keras_model
from rakuten_mm.models.text import (
    adapt_vectorizer, assemble_text_model, build_featurizer, build_sequence_head, build_tfidf_head, text_tensor,
    vectorize,
)
from rakuten_mm.models.tfidf_head import cross_fit_and_refit, predict_tfidf_head
from rakuten_mm.models.training import (
    EpochLogger, array_batches, best_epoch, class_weights, fit_classifier, predict_probabilities, sparse_batches,
    training_batch_size,
)
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_text")
SPLITS = ("train", "val", "test")


def texts_and_labels(table: pd.DataFrame, rows: np.ndarray, max_chars: int) -> tuple[list[str], np.ndarray]:
    """Model input strings and class indices of the given rows."""
    part = table.iloc[rows]
    return model_input_texts(part["title"], part["description"], max_chars), part["label"].to_numpy(np.int32)


def tfidf_training(p: dict, labels: dict, rows: dict, args) -> dict:
    """tfidf: a head on the tfidf stage's sparse rows; the head alone is the served model."""
    if not (args.tfidf and Path(args.tfidf, "labelled.npz").is_file()):
        raise SystemExit("train_text.model=tfidf reads the tfidf stage's rows: pass --tfidf (see dvc.yaml)")
    features = load_features(Path(args.tfidf) / "labelled.npz")
    batch_size = training_batch_size(len(labels["train"]), p)
    batches = {name: sparse_batches(features, labels[name], batch_size, shuffle_seed=p["seed"] if name == "train"
                                    else None, rows=rows[name]) for name in SPLITS}
    head = build_tfidf_head(features.shape[1], p, N_CLASSES)
    return {"fitted": head, "featurizer": None, "batches": batches, "params": p, "batch_size": batch_size,
            "cached_features": True, "features": features}


def sequence_training(p: dict, texts: dict, labels: dict) -> dict:
    """cnn, bilstm: the head to fit on token ids computed once, and the vectorizer served before it."""
    started = time.perf_counter()
    featurizer = build_featurizer(adapt_vectorizer(texts["train"], p))
    # Vectorise once: string work per batch and epoch would dominate training time.
    tokens = {name: vectorize(featurizer, texts[name]) for name in ("train", "val")}
    log.info("token ids: %s; vectorised in %.1f s", tokens["train"].shape, time.perf_counter() - started)
    batch_size = training_batch_size(len(labels["train"]), p)
    batches = {name: array_batches(tokens[name], np.arange(len(labels[name])), labels[name], batch_size,
                                   shuffle_seed=p["seed"] if name == "train" else None) for name in ("train", "val")}
    head = build_sequence_head(p["model"], p, featurizer, N_CLASSES)
    return {"fitted": head, "featurizer": featurizer, "batches": batches, "params": p, "batch_size": batch_size}


def encoder_training(p: dict, texts: dict, labels: dict, rows: dict, args) -> dict:
    """encoder: a head on the text_features stage's embeddings (frozen), or the whole encoder (fine-tuned)."""
    settings = p["encoder"]
    if uses_cached_embeddings(p):
        if not (args.features and args.encoder):
            raise SystemExit("train_text.model=encoder with trainable: false reads the text_features stage's "
                             "outputs: pass --features and --encoder (see dvc.yaml)")
        embeddings = np.load(Path(args.features) / "labelled.npy", mmap_mode="r")
        batch_size = training_batch_size(len(labels["train"]), p)
        batches = {name: array_batches(embeddings, rows[name], labels[name], batch_size,
                                       shuffle_seed=p["seed"] if name == "train" else None) for name in SPLITS}
        return {"fitted": build_encoder_head(embeddings.shape[1], p, N_CLASSES), "batches": batches,
                "featurizer": load_text_model(Path(args.encoder) / "encoder.keras"), "params": p,
                "batch_size": batch_size, "cached_features": True}
    featurizer = build_text_encoder(settings["preset"], settings["sequence_length"], trainable=True)
    model = assemble_text_model(featurizer, build_encoder_head(featurizer.output.shape[-1], p, N_CLASSES))
    batch_size = training_batch_size(len(labels["train"]), {**p, "batch_size": settings["batch_size"]})
    batches = {name: string_batches(texts[name], labels[name], batch_size, p["seed"] if name == "train" else None)
               for name in ("train", "val")}
    # Fine-tuning a pretrained backbone takes far smaller steps than a head trained from scratch.
    return {"fitted": model, "featurizer": None, "batches": batches,
            "params": {**p, "learning_rate": settings["learning_rate"]}, "batch_size": batch_size}


def served_model(parts: dict) -> keras.Model:
    """Raw strings to probabilities: the featurizer then the fitted head, or the fitted model itself."""
    if parts["featurizer"] is None:
        return parts["fitted"]
    return assemble_text_model(parts["featurizer"], parts["fitted"])


def split_probabilities(parts: dict, model: keras.Model, texts: list[str], name: str) -> np.ndarray:
    """A split's probabilities: the head on cached features (tf-idf, frozen encoder), else the model on raw strings."""
    # For a frozen encoder, a second pass of the backbone over val and test would be most of the
    # stage's time; the head on the cached embeddings gives the served model's numbers.
    if parts.get("cached_features"):
        return predict_probabilities(parts["fitted"], parts["batches"][name])
    return predict_probabilities(model, text_tensor(texts), parts["batch_size"])


def out_of_fold_and_served(parts: dict, p: dict, history, table: pd.DataFrame, split: pd.DataFrame,
                           texts: dict) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """The served model, out-of-fold probabilities of train + validation rows, test probabilities.

    tfidf is cross-fitted over the split's folds and refitted with the chosen epochs; the other
    models (minutes per fit) keep their train-only model, whose validation rows are out-of-sample.
    """
    if p["model"] == "tfidf":
        epochs = best_epoch(history)
        log.info("early stopping chose %d epochs: cross-fitting and refitting with them", epochs)
        head, out_of_fold = cross_fit_and_refit(parts["features"], table["label"].to_numpy(np.int32), split, p,
                                                epochs, parts["batch_size"], parts["fitted"])
        return head, out_of_fold, predict_tfidf_head(head, parts["features"], parts["batch_size"],
                                                     rows=rows_of(split, "test"))
    model = served_model(parts)
    validation = split_probabilities(parts, model, texts["val"], "val")
    return (model, held_out_only(validation, validation_mask(split), N_CLASSES),
            split_probabilities(parts, model, texts["test"], "test"))


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
    try:
        if p["model"] == ENCODER_MODEL:
            parts = encoder_training(p, texts, labels, rows, args)
        elif p["model"] == "tfidf":
            parts = tfidf_training(p, labels, rows, args)
        else:
            parts = sequence_training(p, texts, labels)
    except PresetUnavailableError as error:
        log.error("%s", error)
        sys.exit(1)
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
