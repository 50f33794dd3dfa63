"""Stage `train_fusion`: fit the late fusion of the member models on validation probabilities only."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.data.dataset import read_split_table, rows_of
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.evaluation.metrics import review_rule
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.fusion import apply_fusion, fit_fusion, held_out_validation_probabilities
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_fusion")


def validation_inputs(dataset: Path, split_path: Path, probs_dir: Path,
                      members: list[str]) -> tuple[dict, np.ndarray, np.ndarray]:
    """Each member's validation probabilities (NaN rows where it scored nothing), the labels and the row indices."""
    table = read_split_table(dataset / "labelled.csv")
    rows = rows_of(pd.read_csv(split_path, index_col="row"), "val")
    return {name: np.load(probs_dir / name / "val.npy") for name in members}, table["label"].to_numpy()[rows], rows


def save_out_of_fold(path: Path, probabilities: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> None:
    """The served fusion's out-of-fold probabilities, labels and labelled.csv rows, for evaluate's review curve."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, probabilities=probabilities.astype(np.float32), labels=labels, rows=rows)


def main() -> None:
    """Fit the fusion on validation probabilities and log its validation scores."""
    params, args = start_stage("train_fusion", ["dataset", "split", "probs", "model"], "Fit the fusion.")
    p = params["train_fusion"]
    probs, labels, rows = validation_inputs(Path(args.dataset), Path(args.split), Path(args.probs), p["members"])
    fusion = fit_fusion(p, probs, labels)
    # The review threshold is part of the served rule: chosen, like the fusion, on rows it was not fitted on.
    out_of_fold = held_out_validation_probabilities(fusion, p, probs, labels)
    save_out_of_fold(Path(args.probs) / "fusion" / "oof.npz", out_of_fold, labels, rows)
    review = params["evaluate"]
    fusion["review"] = review_rule(out_of_fold, labels, review["target_precision"], review["target_coverage"])
    write_json(fusion, Path(args.model) / "fusion.json")
    selection = fusion["selection"]
    if fusion["method"] == "member":
        log.warning("the %s fusion (cross-validated F1 %.4f) does not beat the %s model alone (%.4f) on "
                    "validation: serving %s alone", selection["method_fitted"], selection["fusion_cv_f1_weighted"],
                    fusion["member"], selection["member_f1_weighted"][fusion["member"]], fusion["member"])
    with StageLive("train_fusion") as live:
        live.log_params(p)
        for name, weight in fusion.get("weights", {}).items():
            live.log_metric(f"weight/{name}", weight, plot=False)
        for name, value in selection["candidates_cv_f1_weighted"].items():
            live.log_metric(f"val_cv_f1_weighted/{name}", value, plot=False)
        live.log_metric("serves_single_member", int(fusion["method"] == "member"), plot=False)
        scores = log_split_scores(live, "val", labels, apply_fusion(fusion, probs).argmax(1))
        live.log_metric("review/threshold", fusion["review"]["threshold"], plot=False)
        live.log_metric("review/oof_coverage", fusion["review"]["oof"]["coverage"], plot=False)
    log.info("fusion %s on validation: %s (serving %s)", selection["method_fitted"], scores, fusion["method"])
    log.info("review threshold %s", fusion["review"])


if __name__ == "__main__":
    main()
