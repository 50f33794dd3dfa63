"""Stage `split`: train / validation / test split of the labelled rows, stratified, duplicates kept together.

Every train + validation row also gets a fold: the k folds every member and the fusion cross-fit on.
"""

import logging
from pathlib import Path

import pandas as pd

from rakuten_mm.data.dataset import read_split_table
from rakuten_mm.data.splitting import duplicate_groups, duplicate_summary, fitting_folds, grouped_split
from rakuten_mm.jsonfiles import write_json
from rakuten_mm.stage import start_stage

log = logging.getLogger("split")


def main() -> None:
    """Write the split of the labelled rows, its sizes and how duplicate texts were grouped."""
    params, args = start_stage("split", ["dataset", "out", "summary"], "Grouped, stratified train/val/test split.")
    p = params["split"]
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    labels = table["label"].to_numpy()
    groups = duplicate_groups(table["title"], table["description"])
    split = pd.Series(grouped_split(labels, groups, p["val_size"], p["test_size"], p["seed"]))
    folds = fitting_folds(labels, groups, split.to_numpy(), p["folds"], p["seed"])
    frame = pd.DataFrame({"index": table.index.to_numpy(), "split": split.to_numpy(), "fold": folds})
    frame.index.name = "row"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out)
    counts = {name: int((split == name).sum()) for name in ("train", "val", "test")}
    counts["fold_rows"] = [int((folds == fold).sum()) for fold in range(p["folds"])]
    counts["duplicates"] = duplicate_summary(groups, labels)
    write_json(counts, args.summary)
    log.info("split sizes: %s", counts)


if __name__ == "__main__":
    main()
