import numpy as np
import pandas as pd

from rakuten_mm.data.dataset import rows_of
from rakuten_mm.models.fusion import fit_fusion
from stages.train_fusion import validation_inputs

N, CLASSES = 60, 3
MEMBERS = ["text", "image", "baseline"]


def write_inputs(root, labels, split):
    """A cleaned table, a split file and val-only probability files as the stages write them."""
    table = pd.DataFrame({"title": "t", "description": "", "has_image": True, "label": labels},
                         index=pd.Index(np.arange(N) + 1000, name="index"))
    table.to_csv(root / "labelled.csv")
    pd.DataFrame({"split": split}, index=pd.Index(np.arange(N), name="row")).to_csv(root / "split.csv")
    rng = np.random.default_rng(0)
    n_val = int((split == "val").sum())
    for model in MEMBERS:
        (root / model).mkdir(exist_ok=True)
        np.save(root / model / "val.npy", rng.dirichlet(np.ones(CLASSES), size=n_val).astype(np.float32))


def test_fusion_sees_validation_rows_only(tmp_path):
    split = np.array(["train", "val", "test"] * (N // 3))
    labels = (np.arange(N) // 3) % CLASSES
    write_inputs(tmp_path, labels, split)
    probs, val_labels, rows = validation_inputs(tmp_path, tmp_path / "split.csv", tmp_path, MEMBERS)
    val_rows = rows_of(pd.read_csv(tmp_path / "split.csv", index_col="row"), "val")
    np.testing.assert_array_equal(val_labels, labels[val_rows])
    np.testing.assert_array_equal(rows, np.flatnonzero(split == "val"))
    params = {"method": "auto", "stacking_C": 1.0, "seed": 0, "weight_grid_step": 0.1, "weight_objective": "f1",
              "selection_folds": 3}
    fitted = fit_fusion(params, probs, val_labels)

    # Scramble every train and test label: the fitted fusion must not move.
    scrambled = labels.copy()
    scrambled[split != "val"] = (scrambled[split != "val"] + 1) % CLASSES
    write_inputs(tmp_path, scrambled, split)
    again, again_labels, _ = validation_inputs(tmp_path, tmp_path / "split.csv", tmp_path, MEMBERS)
    assert fit_fusion(params, again, again_labels) == fitted
