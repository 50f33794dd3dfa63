"""Cross-fitting over the split's folds: out-of-fold probabilities of every train + validation row.

The split stage gives each train + validation row a fold (test rows: -1). A member fitted k times,
each time on the other folds, predicts every such row from a model that never saw it; the fusion
is fitted and chosen on those probabilities, and every validation score is read from them.
Out-of-fold arrays (oof.npy) are aligned with `fitting_rows(split)`.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm


def fitting_rows(split: pd.DataFrame) -> np.ndarray:
    """Row positions of the train + validation rows (those with a fold), in row order."""
    return split.index[split["fold"].to_numpy() >= 0].to_numpy()


def fitting_folds(split: pd.DataFrame) -> np.ndarray:
    """The fold of each row of fitting_rows(split)."""
    folds = split["fold"].to_numpy()
    return folds[folds >= 0]


def validation_mask(split: pd.DataFrame) -> np.ndarray:
    """Which rows of fitting_rows(split) belong to the validation split."""
    return (split["split"].to_numpy() == "val")[split["fold"].to_numpy() >= 0]


# A worker process imports scikit-learn before its first fit (1-2 s): folds of fewer rows are
# fitted sooner one after the other in this process.
MIN_ROWS_FOR_WORKERS = 2000


def cross_fit(fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], folds: np.ndarray, n_classes: int,
              name: str, workers: int = 1) -> np.ndarray:
    """Out-of-fold probabilities: fit_predict(fit positions, held-out positions) once per fold.

    workers > 1 fits folds side by side in worker processes (fit_predict and what it holds are
    pickled): for CPU-bound fits such as liblinear's, not for a Keras model reused across folds.
    Under MIN_ROWS_FOR_WORKERS rows the folds are fitted in this process.
    """
    out_of_fold = np.full((len(folds), n_classes), np.nan, dtype=np.float32)
    held_out = [folds == fold for fold in np.unique(folds)]
    workers = workers if len(folds) >= MIN_ROWS_FOR_WORKERS else 1
    # Processes, not threads: liblinear releases the GIL but draws from one random generator per
    # process, so threads interleave its draws and two runs differ in the last bits.
    fitted = Parallel(n_jobs=max(workers, 1), return_as="generator")(
        delayed(fit_predict)(np.flatnonzero(~held), np.flatnonzero(held)) for held in held_out)
    for held, probabilities in zip(held_out, tqdm(fitted, total=len(held_out), desc=f"{name} cross-fitting",
                                                  unit="fold")):
        out_of_fold[held] = probabilities
    return out_of_fold


def held_out_only(validation_probs: np.ndarray, validation: np.ndarray, n_classes: int) -> np.ndarray:
    """Out-of-fold rows of a member that is not cross-fitted: its validation rows, NaN ("cannot score") elsewhere."""
    # The fusion treats NaN rows as rows the member cannot score, so it learns this member's
    # weight from the validation rows alone, which its train-only model never saw.
    out_of_fold = np.full((len(validation), n_classes), np.nan, dtype=np.float32)
    out_of_fold[validation] = validation_probs
    return out_of_fold


def write_member_probs(out: str | Path, out_of_fold: np.ndarray, validation: np.ndarray, test: np.ndarray) -> None:
    """oof.npy (train + validation rows), val.npy (its validation rows) and test.npy (the served model's)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "oof.npy", out_of_fold.astype(np.float32))
    np.save(out / "val.npy", out_of_fold[validation].astype(np.float32))
    np.save(out / "test.npy", np.asarray(test, dtype=np.float32))
