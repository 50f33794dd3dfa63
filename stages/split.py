"""Stage `split`: stratified train / validation / test split of the labelled rows."""

import logging
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from rakuten_mm.data.dataset import read_split_table
from rakuten_mm.models.io import write_json
from rakuten_mm.stage import start_stage

log = logging.getLogger("split")


def stratified_split(labels: pd.Series, val_size: float, test_size: float, seed: int) -> pd.Series:
    """Name each row train, val or test, stratified on its label."""
    rows = pd.RangeIndex(len(labels))
    rest, test = train_test_split(rows, test_size=test_size, stratify=labels, random_state=seed)
    relative_val = val_size / (1.0 - test_size)
    train, val = train_test_split(rest, test_size=relative_val, stratify=labels.iloc[rest], random_state=seed)
    split = pd.Series("train", index=rows, name="split")
    split.iloc[val] = "val"
    split.iloc[test] = "test"
    return split


def main() -> None:
    """Write the stratified split of the labelled rows and its sizes."""
    params, args = start_stage("split", ["dataset", "out", "summary"], "Stratified train/val/test split.")
    p = params["split"]
    table = read_split_table(Path(args.dataset) / "labelled.csv")
    split = stratified_split(table["label"].reset_index(drop=True), p["val_size"], p["test_size"], p["seed"])
    frame = pd.DataFrame({"index": table.index.to_numpy(), "split": split.to_numpy()})
    frame.index.name = "row"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out)
    counts = {name: int((split == name).sum()) for name in ("train", "val", "test")}
    write_json(counts, args.summary)
    log.info("split sizes: %s", counts)


if __name__ == "__main__":
    main()
