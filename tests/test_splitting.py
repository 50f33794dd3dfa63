"""Splits keep re-listed products (same normalised title + description) in one split, classes balanced."""

import numpy as np

from rakuten_mm.data.splitting import (
    duplicate_groups, duplicate_summary, fitting_folds, grouped_folds, grouped_split,
)


def listings(n_rows: int, n_duplicated: int, seed: int = 0):
    """Titles, descriptions and labels where the first n_duplicated rows are re-listed (case, spacing, punctuation)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 27, n_rows)
    titles = [f"produit {i} modèle {labels[i]}" for i in range(n_rows)]
    descriptions = ["" if i % 3 else f"description {i}" for i in range(n_rows)]
    for i in range(n_duplicated):
        titles.append(titles[i].upper() + " !")
        descriptions.append("  " + descriptions[i])
    return titles, descriptions, np.concatenate([labels, labels[:n_duplicated]])


def test_duplicate_texts_share_a_group_and_are_counted():
    titles, descriptions, labels = listings(100, 10)
    groups = duplicate_groups(titles, descriptions)
    assert len(set(groups)) == 100
    assert all(groups[i] == groups[100 + i] for i in range(10))
    conflicting = labels.copy()
    conflicting[100] = (labels[0] + 1) % 27
    assert duplicate_summary(groups, conflicting) == {
        "duplicate_text_rows": 10, "duplicate_text_groups": 10, "duplicate_groups_with_several_labels": 1}


def test_each_group_lands_in_one_split_and_classes_are_spread():
    titles, descriptions, labels = listings(2700, 300)
    groups = duplicate_groups(titles, descriptions)
    names = grouped_split(labels, groups, val_size=0.15, test_size=0.15, seed=1)
    for group in np.unique(groups):
        assert len(set(names[groups == group])) == 1
    shares = {name: (names == name).mean() for name in ("train", "val", "test")}
    assert abs(shares["test"] - 0.15) < 0.02 and abs(shares["val"] - 0.15) < 0.02
    for label in range(27):
        assert (names[labels == label] == "test").sum() >= 5, label


def test_folds_keep_groups_whole_and_cover_every_row_once():
    titles, descriptions, labels = listings(540, 60)
    groups = duplicate_groups(titles, descriptions)
    folds = grouped_folds(labels, groups, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(labels)))
    for fold in folds:
        inside = set(groups[fold])
        outside = set(groups[np.setdiff1d(np.arange(len(labels)), fold)])
        assert not inside & outside


def test_fitting_folds_cover_train_and_validation_keep_groups_whole_and_skip_test():
    titles, descriptions, labels = listings(1080, 120)
    groups = duplicate_groups(titles, descriptions)
    names = grouped_split(labels, groups, val_size=0.15, test_size=0.15, seed=1)
    folds = fitting_folds(labels, groups, names, 5, seed=0)
    assert (folds[names == "test"] == -1).all() and set(folds[names != "test"]) == set(range(5))
    for group in np.unique(groups):
        assert len(set(folds[groups == group])) == 1
    # Stratified: every class with ≥ 5 fitting rows is in every fold.
    fitting = names != "test"
    for label in range(27):
        if (labels[fitting] == label).sum() >= 5 + 3:
            assert set(folds[fitting & (labels == label)]) == set(range(5)), label


def test_a_class_with_fewer_rows_than_folds_is_logged_and_still_assigned(caplog):
    labels = np.array([0] * 20 + [1] * 20 + [2] * 3)
    names = np.array(["train"] * len(labels), dtype=object)
    folds = fitting_folds(labels, np.arange(len(labels)), names, 5, seed=0)
    assert (folds >= 0).all() and len(set(folds[labels == 2])) == 3
    assert "classes [2] have fewer train + validation rows ([3]) than folds" in caplog.text
