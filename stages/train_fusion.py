"""Stage `train_fusion`: fit the late fusion on the members' out-of-fold probabilities of train + validation rows."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten_mm.data.dataset import read_split_table
from rakuten_mm.evaluation.live import StageLive, log_split_scores
from rakuten_mm.evaluation.metrics import review_rule
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.models.crossfit import fitting_folds, fitting_rows, validation_mask
from rakuten_mm.models.fusion import fit_fusion
from rakuten_mm.stage import start_stage

log = logging.getLogger("train_fusion")


def out_of_fold_inputs(dataset: Path, probs_dir: Path, members: list[str],
                       split: pd.DataFrame) -> tuple[dict, np.ndarray]:
    """Each member's out-of-fold probabilities of the train + validation rows (NaN rows: not scored) and the labels."""
    labels = read_split_table(dataset / "labelled.csv")["label"].to_numpy()
    return {name: np.load(probs_dir / name / "oof.npy") for name in members}, labels[fitting_rows(split)]


def write_served_out_of_fold(path: Path, out_of_fold: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> dict:
    """oof.npz: the served fusion's out-of-fold probabilities, labels and labelled.csv rows it was chosen on."""
    # The review threshold is chosen on these: only rows no fitted part of the served model saw
    # (train + validation when every member is cross-fitted, validation rows otherwise).
    chosen = ~np.isnan(out_of_fold).any(axis=1)
    saved = {"probabilities": out_of_fold[chosen].astype(np.float32), "labels": labels[chosen].astype(np.int64),
             "rows": np.asarray(rows)[chosen].astype(np.int64)}
    np.savez(path, **saved)
    return saved


def main() -> None:
    """Fit the fusion on out-of-fold probabilities; log and save its out-of-fold scores and probabilities."""
    params, args = start_stage("train_fusion", ["dataset", "split", "probs", "model"], "Fit the fusion.")
    p = params["train_fusion"]
    split = pd.read_csv(args.split, index_col="row")
    probs, labels = out_of_fold_inputs(Path(args.dataset), Path(args.probs), p["members"], split)
    validation = validation_mask(split)
    fusion, out_of_fold = fit_fusion(p, probs, labels, fitting_folds(split), validation)
    out = Path(args.probs) / "fusion"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "oof.npy", out_of_fold)
    np.save(out / "val.npy", out_of_fold[validation])
    served = write_served_out_of_fold(out / "oof.npz", out_of_fold, labels, fitting_rows(split))
    # The review threshold is part of the served rule: chosen, like the fusion, on rows it was not fitted on.
    review = params["evaluate"]
    fusion["review"] = review_rule(served["probabilities"], served["labels"], review["target_precision"],
                                   review["target_coverage"])
    write_json(fusion, Path(args.model) / "fusion.json")
    selection = fusion["selection"]
    if fusion["method"] == "member":
        log.warning("the %s fusion (out-of-fold F1 %.4f) does not beat the %s model alone (%.4f): serving %s alone",
                    selection["method_fitted"], selection["fusion_cv_f1_weighted"], fusion["member"],
                    selection["member_f1_weighted"][fusion["member"]], fusion["member"])
    with StageLive("train_fusion") as live:
        live.log_params(p)
        for name, weight in fusion.get("weights", {}).items():
            live.log_metric(f"weight/{name}", weight, plot=False)
        # Every score here is out of fold: the fusion never saw the rows it is scored on.
        for name, value in selection["candidates_cv_f1_weighted"].items():
            live.log_metric(f"oof_f1_weighted/{name}", value, plot=False)
        for name, value in selection.get("validation_rows_f1_weighted", {}).items():
            live.log_metric(f"oof_val_f1_weighted/{name}", value, plot=False)
        live.log_metric("serves_single_member", int(fusion["method"] == "member"), plot=False)
        if not np.isnan(out_of_fold).any():  # a fusion that uses the image model is fitted on validation rows only
            log_split_scores(live, "train_val", labels, out_of_fold.argmax(1))
        scores = log_split_scores(live, "val", labels[validation], out_of_fold[validation].argmax(1))
        live.log_metric("review/threshold", fusion["review"]["threshold"], plot=False)
        live.log_metric("review/oof_coverage", fusion["review"]["oof"]["coverage"], plot=False)
    log.info("fusion %s, out of fold on validation: %s (serving %s)", selection["method_fitted"], scores,
             fusion["method"])
    log.info("review threshold %s", fusion["review"])


if __name__ == "__main__":
    main()
