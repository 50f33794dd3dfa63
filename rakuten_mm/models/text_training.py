"""What train_text fits for each text model, and how it gets out-of-fold and test probabilities.

Each builder returns the stage's "parts": the head to fit, its batches per split, the featurizer
served before it (None when the head is the served model) and the effective batch size. Kept
apart from text.py and encoder.py, which the API imports: this is training code only.
"""

import logging
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import rows_of
from rakuten_mm.features.tfidf import load_features
from rakuten_mm.models.crossfit import held_out_only, validation_mask
from rakuten_mm.models.encoder import build_encoder_head, build_text_encoder, load_text_model, string_batches
from rakuten_mm.models.text import (
    adapt_vectorizer, assemble_text_model, build_featurizer, build_sequence_head, text_tensor,
    vectorize,
)
from rakuten_mm.models.tfidf_head import RestartableHead, cross_fit_and_refit
from rakuten_mm.models.training import (
    array_batches, best_epoch, predict_probabilities, sparse_batches, training_batch_size,
)
from rakuten_mm.params import uses_cached_embeddings

log = logging.getLogger("train_text")
SPLITS = ("train", "val", "test")


def tfidf_training(p: dict, labels: dict, rows: dict, tfidf_dir: str | Path) -> dict:
    """tfidf: a head on the tfidf stage's sparse rows; the head alone is the served model."""
    # One compiled head and its pipelines for early stopping, the fold fits and the refit.
    head = RestartableHead(load_features(Path(tfidf_dir) / "labelled.npz"), p)
    batch_size = training_batch_size(len(labels["train"]), p)
    batches = {"train": head.training_batches(labels["train"], batch_size, rows["train"]),
               "val": sparse_batches(head.features, labels["val"], batch_size, None, rows=rows["val"])}
    return {"fitted": head.model, "featurizer": None, "batches": batches, "params": p, "batch_size": batch_size,
            "cached_features": True, "restartable": head}


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


def encoder_training(p: dict, texts: dict, labels: dict, rows: dict, features_dir: str | Path | None,
                     encoder_dir: str | Path | None) -> dict:
    """encoder: a head on the text_features stage's embeddings (frozen), or the whole encoder (fine-tuned)."""
    settings = p["encoder"]
    if uses_cached_embeddings(p):
        embeddings = np.load(Path(features_dir) / "labelled.npy", mmap_mode="r")
        batch_size = training_batch_size(len(labels["train"]), p)
        batches = {name: array_batches(embeddings, rows[name], labels[name], batch_size,
                                       shuffle_seed=p["seed"] if name == "train" else None) for name in SPLITS}
        return {"fitted": build_encoder_head(embeddings.shape[1], p, N_CLASSES), "batches": batches,
                "featurizer": load_text_model(Path(encoder_dir) / "encoder.keras"), "params": p,
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
        restartable = parts["restartable"]
        head, out_of_fold = cross_fit_and_refit(restartable, table["label"].to_numpy(np.int32), split, epochs,
                                                parts["batch_size"])
        return head, out_of_fold, restartable.predict(parts["batch_size"], rows=rows_of(split, "test"))
    model = served_model(parts)
    validation = split_probabilities(parts, model, texts["val"], "val")
    return (model, held_out_only(validation, validation_mask(split), N_CLASSES),
            split_probabilities(parts, model, texts["test"], "test"))
