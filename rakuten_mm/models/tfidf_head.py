"""The tf-idf text head cross-fitted over the split's folds and refitted with its epochs frozen."""

import keras
import numpy as np
import pandas as pd
from scipy import sparse

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.models.crossfit import cross_fit, fitting_folds, fitting_rows
from rakuten_mm.models.text import build_tfidf_head
from rakuten_mm.models.training import (
    SparseRows, class_weights, compile_classifier, predict_probabilities, sparse_batches,
)


class RestartableHead:
    """One compiled tf-idf head that every fit restarts from the same variables.

    A new Keras model per fold retraced its train and predict steps each time: ~1 s a fit, a
    quarter of a cross-fitting fold at the default size. Reset weights, dropout seeds and Adam's
    moments make each fit the fit of a new head built from the same seed.
    """

    def __init__(self, width: int, params: dict):
        self.params = params
        self.model = build_tfidf_head(width, params, N_CLASSES)
        compile_classifier(self.model, params)
        self.model.optimizer.build(self.model.trainable_variables)
        self.start = [variable.numpy() for variable in self.state()]

    def state(self) -> list:
        """Every variable a fit changes: the model's (seed generators included) and the optimizer's."""
        return list(self.model.variables) + list(self.model.optimizer.variables)

    def fit(self, features: "sparse.csr_matrix | SparseRows", labels: np.ndarray, epochs: int, batch_size: int,
            rows: np.ndarray | None = None) -> keras.Model:
        """The head fitted from its start for a fixed number of epochs on the given rows (all when None)."""
        for variable, value in zip(self.state(), self.start):
            variable.assign(value)
        batches = sparse_batches(features, labels, batch_size, shuffle_seed=self.params["seed"], rows=rows)
        weights = class_weights(labels, N_CLASSES, self.params["class_weights"])
        self.model.fit(batches, epochs=epochs, class_weight=weights, verbose=0)
        return self.model


def predict_tfidf_head(head: keras.Model, features: "sparse.csr_matrix | SparseRows", batch_size: int,
                       rows: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities of tf-idf rows (the given positions, all when None)."""
    return predict_probabilities(head, sparse_batches(features, None, batch_size, None, rows=rows))


def tfidf_out_of_fold(features: "sparse.csr_matrix | SparseRows", labels: np.ndarray, folds: np.ndarray,
                      params: dict, epochs: int, batch_size: int, rows: np.ndarray | None = None,
                      head: RestartableHead | None = None) -> np.ndarray:
    """Each row's probabilities from a head fitted on the other folds (epochs and batch size frozen).

    rows: the feature rows that labels and folds describe (all when None); head: the one to restart.
    """
    rows = np.arange(features.shape[0]) if rows is None else np.asarray(rows)
    head = head or RestartableHead(features.shape[1], params)

    def fit_predict(fit, held):
        head.fit(features, labels[fit], epochs, batch_size, rows=rows[fit])
        return predict_tfidf_head(head.model, features, batch_size, rows=rows[held])

    return cross_fit(fit_predict, folds, N_CLASSES, "text")


def cross_fit_and_refit(features: "sparse.csr_matrix | SparseRows", labels: np.ndarray, split: pd.DataFrame,
                        params: dict, epochs: int, batch_size: int,
                        train_only: keras.Model) -> tuple[keras.Model, np.ndarray]:
    """Out-of-fold probabilities of the train + validation rows, and the head to serve.

    The served head is refitted on train + validation for the epochs early stopping chose on the
    validation rows (params.refit), or is the train-only head that chose them.
    """
    rows = fitting_rows(split)
    head = RestartableHead(features.shape[1], params)
    out_of_fold = tfidf_out_of_fold(features, labels[rows], fitting_folds(split), params, epochs, batch_size,
                                    rows=rows, head=head)
    if not params["refit"]:
        return train_only, out_of_fold
    return head.fit(features, labels[rows], epochs, batch_size, rows=rows), out_of_fold
