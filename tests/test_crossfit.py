"""Cross-fitting: out-of-fold rows come from fits that never saw them; a refit learns from validation rows."""

import numpy as np
import pandas as pd
import tensorflow as tf
from scipy import sparse

from rakuten_mm.models.crossfit import cross_fit, fitting_folds, fitting_rows, held_out_only, validation_mask
from rakuten_mm.models.determinism import set_determinism
from rakuten_mm.models.tfidf_head import RestartableHead, cross_fit_and_refit, tfidf_out_of_fold
from rakuten_mm.models.training import SparseBatches, SparseRows, predict_probabilities, sparse_batches

HEAD = {"seed": 0, "dropout": 0.1, "hidden_units": 16, "learning_rate": 0.01, "class_weights": "none"}


def predict_tfidf_head(head, features: sparse.csr_matrix, batch_size: int) -> np.ndarray:
    """A fitted head's class probabilities of every row of features."""
    return predict_probabilities(head, sparse_batches(features, None, batch_size, None))


def clustered_rows(n_rows: int, seed: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Non-negative sparse rows of 27 classes, each class its own block of columns plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 27, n_rows).astype(np.int32)
    dense = rng.random((n_rows, 27 * 4)) * (rng.random((n_rows, 27 * 4)) < 0.05)
    for offset in range(4):
        dense[np.arange(n_rows), labels * 4 + offset] += 1.0
    return sparse.csr_matrix(dense.astype(np.float32)), labels


def split_table(n_rows: int) -> pd.DataFrame:
    """Rows 0-59 train, 60-79 validation (both in 2 folds), 80+ test."""
    names = np.where(np.arange(n_rows) < 60, "train", np.where(np.arange(n_rows) < 80, "val", "test"))
    folds = np.where(names == "test", -1, np.arange(n_rows) % 2)
    return pd.DataFrame({"split": names, "fold": folds}, index=pd.Index(np.arange(n_rows), name="row"))


def test_cross_fit_gives_each_fold_the_predictions_of_a_fit_without_it():
    folds = np.array([0, 1, 2, 0, 1, 2])
    seen = []

    def fit_predict(fit, held):
        seen.append((set(fit), set(held)))
        return np.tile(np.bincount(folds[fit], minlength=3), (len(held), 1)).astype(np.float32)

    out_of_fold = cross_fit(fit_predict, folds, 3, "test")
    assert all(not fit & held for fit, held in seen)
    np.testing.assert_array_equal(out_of_fold[folds == 0], [[0, 2, 2]] * 2)


def test_split_helpers_and_members_that_are_not_cross_fitted():
    table = split_table(100)
    assert fitting_rows(table).tolist() == list(range(80)) and len(fitting_folds(table)) == 80
    validation = validation_mask(table)
    assert validation.sum() == 20 and validation[60:].all()
    out_of_fold = held_out_only(np.ones((20, 27), dtype=np.float32), validation, 27)
    assert np.isnan(out_of_fold[:60]).all() and (out_of_fold[60:] == 1).all()


def test_tfidf_out_of_fold_rows_do_not_depend_on_their_own_labels():
    features, labels = clustered_rows(200, seed=0)
    folds = np.arange(200) % 2
    set_determinism(0)
    honest = tfidf_out_of_fold(RestartableHead(features, HEAD), labels, folds, epochs=3, batch_size=32)
    relabelled = labels.copy()
    relabelled[folds == 0] = (relabelled[folds == 0] + 1) % 27
    set_determinism(0)
    again = tfidf_out_of_fold(RestartableHead(features, HEAD), relabelled, folds, epochs=3, batch_size=32)
    # Equal up to float rounding (TensorFlow's sparse kernels differ in the last bits between fits).
    np.testing.assert_allclose(again[folds == 0], honest[folds == 0], rtol=1e-4, atol=1e-6)
    assert (honest.argmax(1) == labels).mean() > 0.3  # chance: 1/27
    assert np.abs(again[folds == 1] - honest[folds == 1]).max() > 0.01


def test_only_a_refitted_head_learns_a_class_seen_in_validation_alone():
    features, labels = clustered_rows(100, seed=1)
    labels[labels == 26] = 25
    dense = features.toarray()
    dense[60:80] = 0.0
    dense[60:80, 26 * 4:27 * 4] = 1.0  # validation rows only: class 26's own columns
    labels[60:80] = 26
    features = sparse.csr_matrix(dense)
    set_determinism(0)
    head, out_of_fold = cross_fit_and_refit(RestartableHead(features, {**HEAD, "refit": True}), labels,
                                            split_table(100), 10, 16)
    assert out_of_fold.shape == (80, 27)
    assert (predict_tfidf_head(head, features[60:80], 16).argmax(1) == 26).mean() > 0.5


def test_without_refit_the_served_head_is_the_train_only_head_not_the_last_fold():
    features, labels = clustered_rows(100, seed=1)
    set_determinism(0)
    restartable = RestartableHead(features, {**HEAD, "refit": False})
    train_only = restartable.fit(labels[:60], 4, 16, rows=np.arange(60))  # what early stopping leaves
    before = predict_tfidf_head(train_only, features, 16)
    head, _ = cross_fit_and_refit(restartable, labels, split_table(100), 4, 16)
    np.testing.assert_array_equal(predict_tfidf_head(head, features, 16), before)


def test_batches_of_row_positions_are_the_batches_of_those_rows_sliced_out():
    # Folds batch positions into one shared matrix instead of a sliced copy (tf.data keeps the
    # generator, and what it holds, for the life of the process): the batches must be the same.
    matrix = sparse.random(60, 40, density=0.2, format="csr", dtype=np.float32, random_state=3)
    rows = np.random.default_rng(4).permutation(60)[:37]
    labels = np.arange(37, dtype=np.int32)
    sliced = sparse_batches(matrix[rows], labels, 8, shuffle_seed=5)
    # One pipeline pointed at other rows first, then at these: their epochs count from the first again.
    reused = SparseBatches(SparseRows(matrix), labelled=True)
    list(reused.select(np.arange(60), np.zeros(60, np.int32), 16, shuffle_seed=5))
    positions = reused.select(rows, labels, 8, shuffle_seed=5)
    for _ in range(2):  # two epochs: each reshuffles the same way
        pairs = list(zip(sliced, positions, strict=True))
        assert len(pairs) == 5
        for (a, a_labels), (b, b_labels) in pairs:
            assert np.array_equal(tf.sparse.to_dense(a).numpy(), tf.sparse.to_dense(b).numpy())
            assert np.array_equal(a_labels.numpy(), b_labels.numpy())


def test_a_restarted_head_fits_as_a_new_head_built_from_the_same_seed():
    features, labels = clustered_rows(120, seed=2)
    shuffled = np.random.default_rng(3).permutation(labels)
    set_determinism(0)
    reused = RestartableHead(features, HEAD)
    reused.fit(shuffled, epochs=4, batch_size=16)  # moves weights, seeds and Adam's moments
    reused.fit(labels, epochs=2, batch_size=16)
    after_restart = reused.predict(16)
    set_determinism(0)
    new = RestartableHead(features, HEAD)
    from_new = predict_tfidf_head(new.fit(labels, epochs=2, batch_size=16), features, 16)
    np.testing.assert_allclose(after_restart, from_new, rtol=1e-4, atol=1e-6)
