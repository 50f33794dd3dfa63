"""Stage `train_fusion`: fit the late fusion of text and image on validation probabilities only."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.models.fusion import apply_fusion, fit_fusion
from rakuten_mm.models.io import write_json
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_fusion")


def validation_inputs(dataset: Path, split_path: Path, text_probs: Path, image_probs: Path) -> dict:
    """Text and image probabilities, image presence and labels of the validation rows, nothing else."""
    table = read_split_table(dataset / "labelled.csv")
    rows = rows_of(pd.read_csv(split_path, index_col="row"), "val")
    return {
        "text": np.load(text_probs / "val.npy"),
        "image": np.load(image_probs / "val.npy"),
        "has_image": table["has_image"].to_numpy()[rows],
        "labels": table["label"].to_numpy()[rows],
    }


def main() -> None:
    """Fit the fusion on validation probabilities and log its validation scores."""
    params, args = start_stage(
        "train_fusion", ["dataset", "split", "text_probs", "image_probs", "model"], "Fit the fusion."
    )
    p = params["train_fusion"]
    val = validation_inputs(Path(args.dataset), Path(args.split), Path(args.text_probs), Path(args.image_probs))
    fusion = fit_fusion(p, val["text"], val["image"], val["has_image"], val["labels"])
    write_json(fusion, Path(args.model) / "fusion.json")
    fused = apply_fusion(fusion, val["text"], val["image"], val["has_image"])
    with StageLive("train_fusion") as live:
        live.log_params(p)
        if "text_weight" in fusion:
            live.log_metric("text_weight", fusion["text_weight"], plot=False)
        scores = log_split_scores(live, "val", val["labels"], fused.argmax(1))
    log.info("fusion %s on validation: %s", p["method"], scores)


if __name__ == "__main__":
    main()
