"""Stage `train_image`: fit the Keras image classifier on products that have an image.

train_image.input=pixels trains a whole network on the image arrays; input=features trains only a
head on the frozen backbone features of the image_features stage (seconds per epoch, for sweeps).
"""

import logging
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import load_images, read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.models.image import (
    PretrainedWeightsUnavailableError,
    blank_image_probabilities,
    build_feature_head,
    build_image_model,
    compose_image_model,
    flips_in_input_pipeline,
)
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.classes import write_classes
from rakuten_mm.models.crossfit import held_out_only, validation_mask, write_member_probs
from rakuten_mm.models.determinism import set_determinism
from rakuten_mm.models.device import device_summary
from rakuten_mm.models.keras_files import save_keras_model
from rakuten_mm.models.training import (
    EpochLogger, array_batches, best_epoch, class_weights, fit_classifier, fit_epochs, learning_rate_schedule,
    predict_probabilities, training_batch_size,
)
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_image")


def image_rows(table: pd.DataFrame, split: pd.DataFrame, name: str) -> np.ndarray:
    """Rows of a split that have a usable image: the image model never sees blank pictures."""
    rows = rows_of(split, name)
    return rows[table["has_image"].to_numpy()[rows]]


def model_and_inputs(p: dict, size: int, args) -> tuple[keras.Model, np.ndarray]:
    """The model to fit and the row-aligned array it reads: image pixels or frozen features."""
    if p["input"] == "pixels":
        return build_image_model(p, size, N_CLASSES), load_images(Path(args.dataset) / "labelled_images.npy")
    if p["input"] == "features":
        features = np.load(Path(args.features) / "labelled.npy", mmap_mode="r")
        return build_feature_head(features.shape[1], p, N_CLASSES), features
    raise ValueError(f"train_image.input must be pixels or features, got {p['input']!r}")


def served_model(p: dict, trained: keras.Model, extractor_dir: str) -> keras.Model:
    """What the API runs on pixels: the trained network, or the frozen extractor followed by the head."""
    if p["input"] == "pixels":
        return trained
    return compose_image_model(keras.models.load_model(Path(extractor_dir) / "extractor.keras"), trained)


def split_probabilities(model: keras.Model, inputs, split: pd.DataFrame, rows: dict, name: str,
                        batch_size: int) -> np.ndarray:
    """A split's image probabilities: NaN rows for products without an image."""
    all_rows = rows_of(split, name)
    proba = blank_image_probabilities(len(all_rows), N_CLASSES)
    proba[np.isin(all_rows, rows[name])] = predict_probabilities(
        model, array_batches(inputs, rows[name], None, batch_size, None))
    return proba


def refitted_model(p: dict, size: int, args, inputs, rows: dict, labels: np.ndarray, epochs: int,
                   batch_size: int) -> keras.Model:
    """A new model fitted on the train + validation rows with an image, for the epochs early stopping chose."""
    model, _ = model_and_inputs(p, size, args)
    both = np.sort(np.concatenate([rows["train"], rows["val"]]))
    log.info("refitting on %d train + validation images for %d epochs", len(both), epochs)
    batches = array_batches(inputs, both, labels[both], batch_size, shuffle_seed=p["seed"],
                            flip=flips_in_input_pipeline(p))
    return fit_epochs(model, batches, p, epochs, class_weights(labels[both], N_CLASSES, p["class_weights"]),
                      learning_rate_schedule(p))


def main() -> None:
    """Train the image model, then save it and its validation and test probabilities."""
    params, args = start_stage("train_image", ["dataset", "features", "extractor", "split", "model", "probs"],
                               "Train the image model.")
    p, image = params["train_image"], params["image"]
    set_determinism(p["seed"])
    device = device_summary(p["mixed_precision"])
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    split = pd.read_csv(args.split, index_col="row")
    labels = table["label"].to_numpy(dtype=np.int32)
    rows = {name: image_rows(table, split, name) for name in ("train", "val", "test")}
    try:
        model, inputs = model_and_inputs(p, image["size"], args)
    except PretrainedWeightsUnavailableError as error:
        log.error("%s", error)
        sys.exit(1)
    model.summary(print_fn=log.info)
    batch_size = training_batch_size(len(rows["train"]), p)
    batches = {name: array_batches(inputs, rows[name], labels[rows[name]], batch_size,
                                   shuffle_seed=p["seed"] if name == "train" else None,
                                   flip=name == "train" and flips_in_input_pipeline(p))
               for name in ("train", "val")}
    with StageLive("train_image") as live:
        live.log_params({**p, **device, "effective_batch_size": batch_size})
        live.log_metric("device/gpus", device["gpus"], plot=False)
        history = fit_classifier(model, batches["train"], batches["val"], labels[rows["val"]], p,
                                 class_weights(labels[rows["train"]], N_CLASSES, p["class_weights"]),
                                 [EpochLogger(live, len(rows["train"])), *learning_rate_schedule(p)])
        # Validation from the train-only model (out-of-sample); test from the served one.
        served = refitted_model(p, image["size"], args, inputs, rows, labels, best_epoch(history),
                                batch_size) if p["refit"] else model
        proba = {"val": split_probabilities(model, inputs, split, rows, "val", p["batch_size"]),
                 "test": split_probabilities(served, inputs, split, rows, "test", p["batch_size"])}
        for name in ("val", "test"):
            scored = ~np.isnan(proba[name]).any(axis=1)
            log_split_scores(live, name, labels[rows[name]], proba[name][scored].argmax(1))
    # Not cross-fitted (5 more fits of about a minute each): the fusion learns its weight from the
    # validation rows, which the train-only model never saw; train rows are NaN ("cannot score").
    validation = validation_mask(split)
    write_member_probs(args.probs, held_out_only(proba["val"], validation, N_CLASSES), validation, proba["test"])
    save_keras_model(served_model(p, served, args.extractor), Path(args.model) / "model.keras")
    write_classes(args.model)
    write_json({k: image[k] for k in ("size", "white_threshold", "margin")}, Path(args.model) / "preprocessing.json")


if __name__ == "__main__":
    main()
