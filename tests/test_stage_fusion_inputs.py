import numpy as np
import pandas as pd

from rakuten_mm.models.crossfit import fitting_folds, fitting_rows
from rakuten_mm.models.fusion import fit_fusion
from stages.train_fusion import out_of_fold_inputs, write_served_out_of_fold

N, CLASSES = 90, 3
MEMBERS = ["text", "image", "baseline"]


def write_inputs(root, labels, split, folds):
    """A cleaned table, a split file with folds and out-of-fold probability files as the stages write them."""
    table = pd.DataFrame({"title": "t", "description": "", "has_image": True, "label": labels},
                         index=pd.Index(np.arange(N) + 1000, name="index"))
    table.to_csv(root / "labelled.csv")
    pd.DataFrame({"split": split, "fold": folds}, index=pd.Index(np.arange(N), name="row")).to_csv(root / "split.csv")
    rng = np.random.default_rng(0)
    n_fitting = int((folds >= 0).sum())
    for model in MEMBERS:
        (root / model).mkdir(exist_ok=True)
        np.save(root / model / "oof.npy", rng.dirichlet(np.ones(CLASSES), size=n_fitting).astype(np.float32))


def test_fusion_sees_train_and_validation_rows_never_test_labels(tmp_path):
    split = np.array(["train", "val", "test"] * (N // 3))
    folds = np.where(split == "test", -1, np.arange(N) % 3)
    labels = (np.arange(N) // 3) % CLASSES
    write_inputs(tmp_path, labels, split, folds)
    table = pd.read_csv(tmp_path / "split.csv", index_col="row")
    probs, fit_labels = out_of_fold_inputs(tmp_path, tmp_path, MEMBERS, table)
    np.testing.assert_array_equal(fitting_rows(table), np.flatnonzero(split != "test"))
    np.testing.assert_array_equal(fit_labels, labels[split != "test"])
    params = {"method": "auto", "stacking_C": 1.0, "seed": 0, "weight_grid_step": 0.1, "weight_objective": "f1",
              "selection_margin": 2.0}
    fitted, _ = fit_fusion(params, probs, fit_labels, fitting_folds(table))

    # Scramble every test label: the fitted fusion must not move.
    scrambled = labels.copy()
    scrambled[split == "test"] = (scrambled[split == "test"] + 1) % CLASSES
    write_inputs(tmp_path, scrambled, split, folds)
    again, again_labels = out_of_fold_inputs(tmp_path, tmp_path, MEMBERS, table)
    assert fit_fusion(params, again, again_labels, fitting_folds(table))[0] == fitted


def test_oof_npz_holds_only_rows_the_served_fusion_never_saw_with_their_labelled_csv_rows(tmp_path):
    fitting = np.array([0, 2, 3, 5, 7, 8])  # train + validation rows of labelled.csv
    labels = np.array([2, 0, 1, 1, 0, 2])
    out_of_fold = np.full((6, CLASSES), np.nan, dtype=np.float32)
    # A fusion that uses a member scored on validation rows only: fitted (and out of fold) there alone.
    chosen = np.array([False, True, False, True, True, False])
    out_of_fold[chosen] = np.eye(CLASSES, dtype=np.float32)[[0, 1, 2]]
    write_served_out_of_fold(tmp_path / "oof.npz", out_of_fold, labels, fitting)
    saved = np.load(tmp_path / "oof.npz")
    np.testing.assert_array_equal(saved["rows"], [2, 5, 7])
    np.testing.assert_array_equal(saved["labels"], [0, 1, 0])
    assert saved["probabilities"].dtype == np.float32 and saved["probabilities"].shape == (3, CLASSES)
    np.testing.assert_array_equal(saved["probabilities"].argmax(1), [0, 1, 2])
