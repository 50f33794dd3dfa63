"""Train / validation / test splits that keep duplicate listings together and classes balanced."""

import logging
import re
import warnings

import numpy as np
import pandas as pd

# sklearn.model_selection is imported by the two functions that split: it costs about a second of
# start-up, and every stage that reads the dataset imports this module for its duplicate groups.
_NOT_WORD = re.compile(r"\W+")
log = logging.getLogger(__name__)


def duplicate_key(title: str, description: str) -> str:
    """Normalised title + description: re-listed products with the same text share a key."""
    return _NOT_WORD.sub(" ", f"{title} {description}".lower()).strip()


def duplicate_groups(titles, descriptions) -> np.ndarray:
    """A group id per row; rows with the same normalised title + description share it."""
    keys = [duplicate_key(t, d) for t, d in zip(titles, descriptions, strict=True)]
    return pd.factorize(pd.Series(keys))[0]


def duplicate_summary(groups: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """How many rows repeat another row's text, in how many groups, and how many groups mix labels."""
    sizes = np.bincount(groups)
    summary = {"duplicate_text_rows": int((sizes[sizes > 1] - 1).sum()),
               "duplicate_text_groups": int((sizes > 1).sum())}
    if labels is not None:
        labels_per_group = pd.Series(labels).groupby(groups).nunique()
        summary["duplicate_groups_with_several_labels"] = int((labels_per_group > 1).sum())
    return summary


def group_labels(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The most frequent label of each group (the group's stratum)."""
    return pd.Series(labels).groupby(groups).agg(lambda values: values.mode().iloc[0]).to_numpy()


def strata(labels: np.ndarray, minimum: int) -> np.ndarray:
    """Labels to stratify on: classes with fewer than minimum members share one stratum."""
    counts = pd.Series(labels).value_counts()
    rare = counts.index[counts < minimum]
    return np.where(np.isin(labels, rare), -1, labels)


def grouped_holdout(labels: np.ndarray, groups: np.ndarray, size: float, seed: int) -> np.ndarray:
    """A boolean mask of about `size` of the rows, whole groups only, stratified on group labels."""
    from sklearn.model_selection import train_test_split

    _, local = np.unique(groups, return_inverse=True)
    per_group = group_labels(labels, local)
    ids = np.arange(len(per_group))
    try:
        _, held = train_test_split(ids, test_size=size, stratify=strata(per_group, 2), random_state=seed)
    except ValueError:
        # Fewer held-out groups than classes: stratification is impossible, a random draw is not.
        _, held = train_test_split(ids, test_size=size, random_state=seed)
    chosen = np.zeros(len(ids), dtype=bool)
    chosen[held] = True
    return chosen[local]


def grouped_split(labels: np.ndarray, groups: np.ndarray, val_size: float, test_size: float, seed: int) -> np.ndarray:
    """'train', 'val' or 'test' per row; a group's rows stay in one split, stratified on group labels."""
    names = np.full(len(labels), "train", dtype=object)
    test = grouped_holdout(labels, groups, test_size, seed)
    names[test] = "test"
    rest = np.flatnonzero(~test)
    names[rest[grouped_holdout(labels[rest], groups[rest], val_size / (1.0 - test_size), seed)]] = "val"
    return names


def grouped_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Row positions of each test fold of a stratified k-fold that keeps groups whole."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    return [test for _, test in folds.split(np.zeros(len(labels)), labels, groups)]


def fitting_folds(labels: np.ndarray, groups: np.ndarray, names: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """A fold (0..n_folds-1) per train + validation row, -1 for test rows: the folds every model cross-fits on."""
    if n_folds < 2:
        raise ValueError(f"split.folds must be at least 2, got {n_folds}")
    fitted = np.flatnonzero(names != "test")
    counts = np.bincount(labels[fitted])
    rare = np.flatnonzero((counts > 0) & (counts < n_folds))
    if len(rare):
        # Documented fallback, not an error: small real data has such classes. Their rows land in
        # as many folds as they have rows; a fold fit then lacks the class and never predicts it.
        log.warning("split.folds=%d: classes %s have fewer train + validation rows (%s) than folds; their rows "
                    "fill fewer folds", n_folds, rare.tolist(), counts[rare].tolist())
    folds = np.full(len(labels), -1, dtype=np.int64)
    with warnings.catch_warnings():
        # scikit-learn's "least populated class" warning: logged above with the class names.
        warnings.simplefilter("ignore", UserWarning)
        held_out = grouped_folds(labels[fitted], groups[fitted], n_folds, seed)
    for number, held in enumerate(held_out):
        folds[fitted[held]] = number
    return folds
