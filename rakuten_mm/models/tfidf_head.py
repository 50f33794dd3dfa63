"""The tf-idf text head cross-fitted over the split's folds and refitted with its epochs frozen."""

import keras
import numpy as np
import pandas as pd
from scipy import sparse

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.models.crossfit import cross_fit, fitting_folds, fitting_rows
from rakuten_mm.models.text import build_tfidf_head
from rakuten_mm.models.training import class_weights, fit_epochs, predict_probabilities, sparse_batches


def fit_tfidf_head(features: sparse.csr_matrix, labels: np.ndarray, params: dict, epochs: int,
                   batch_size: int, rows: np.ndarray | None = None) -> keras.Model:
    """A new tf-idf head fitted for a fixed number of epochs on the given rows (all when None; labels aligned)."""
    head = build_tfidf_head(features.shape[1], params, N_CLASSES)
    batches = sparse_batches(features, labels, batch_size, shuffle_seed=params["seed"], rows=rows)
    return fit_epochs(head, batches, params, epochs, class_weights(labels, N_CLASSES, params["class_weights"]))


def predict_tfidf_head(head: keras.Model, features: sparse.csr_matrix, batch_size: int,
                       rows: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities of tf-idf rows (the given positions, all when None)."""
    return predict_probabilities(head, sparse_batches(features, None, batch_size, None, rows=rows))


def tfidf_out_of_fold(features: sparse.csr_matrix, labels: np.ndarray, folds: np.ndarray, params: dict,
                      epochs: int, batch_size: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Each row's probabilities from a head fitted on the other folds (epochs and batch size frozen).

    rows: the feature rows that labels and folds describe (all when None).
    """
    rows = np.arange(features.shape[0]) if rows is None else np.asarray(rows)

    def fit_predict(fit, held):
        head = fit_tfidf_head(features, labels[fit], params, epochs, batch_size, rows=rows[fit])
        return predict_tfidf_head(head, features, batch_size, rows=rows[held])

    return cross_fit(fit_predict, folds, N_CLASSES, "text")


def cross_fit_and_refit(features: sparse.csr_matrix, labels: np.ndarray, split: pd.DataFrame, params: dict,
                        epochs: int, batch_size: int, train_only: keras.Model) -> tuple[keras.Model, np.ndarray]:
    """Out-of-fold probabilities of the train + validation rows, and the head to serve.

    The served head is refitted on train + validation for the epochs early stopping chose on the
    validation rows (params.refit), or is the train-only head that chose them.
    """
    rows = fitting_rows(split)
    out_of_fold = tfidf_out_of_fold(features, labels[rows], fitting_folds(split), params, epochs, batch_size,
                                    rows=rows)
    if not params["refit"]:
        return train_only, out_of_fold
    return fit_tfidf_head(features, labels[rows], params, epochs, batch_size, rows=rows), out_of_fold
