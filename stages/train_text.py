"""Stage `train_text`: fit the Keras text classifier, save it and its val/test probabilities."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import EpochLogger, StageLive, log_split_scores
from rakuten_mm.features.text import model_input_texts
from rakuten_mm.models.io import save_keras_model, set_determinism, write_json
from rakuten_mm.models.text import build_text_model, text_tensor
from rakuten_mm.models.training import class_weights, fit_classifier, predict_probabilities
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_text")


def texts_and_labels(table: pd.DataFrame, rows: np.ndarray, max_chars: int) -> tuple:
    """Model input strings as a tensor, and class indices, of the given rows."""
    part = table.iloc[rows]
    texts = model_input_texts(part["title"], part["description"], max_chars)
    return text_tensor(texts), part["label"].to_numpy(dtype=np.int32), texts


def main() -> None:
    params, args = start_stage("train_text", ["dataset", "split", "model", "probs"], "Train the text model.")
    p = params["train_text"]
    set_determinism(p["seed"])
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    split = pd.read_csv(args.split, index_col="row")
    data = {name: texts_and_labels(table, rows_of(split, name), p["max_description_chars"])
            for name in ("train", "val", "test")}
    model = build_text_model(p["model"], data["train"][2], p, N_CLASSES)
    model.summary(print_fn=log.info)
    probs = Path(args.probs)
    probs.mkdir(parents=True, exist_ok=True)
    with StageLive("train_text") as live:
        live.log_params(p)
        fit_classifier(
            model, data["train"][0], data["train"][1], validation_data=data["val"][:2], params=p,
            weights=class_weights(data["train"][1], N_CLASSES, p["class_weights"]), callbacks=[EpochLogger(live)],
        )
        for name in ("val", "test"):
            proba = predict_probabilities(model, data[name][0], p["batch_size"])
            np.save(probs / f"{name}.npy", proba)
            log_split_scores(live, name, data[name][1], proba)
    save_keras_model(model, Path(args.model) / "model.keras")
    write_json({"max_description_chars": p["max_description_chars"]}, Path(args.model) / "preprocessing.json")


if __name__ == "__main__":
    main()
