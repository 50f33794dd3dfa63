"""The tf-idf text head: early stopping, cross-fitting over the split's folds and a refit, all one compiled head."""

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from scipy import sparse

from rakuten_mm.categories import N_CLASSES
from rakuten_mm.models.crossfit import cross_fit, fitting_folds, fitting_rows
from rakuten_mm.models.text import build_tfidf_head
from rakuten_mm.models.training import (
    SparseBatches, SparseRows, class_weights, compile_classifier, predict_probabilities,
)


class RestartableHead:
    """One compiled tf-idf head, and its input pipelines, that every fit restarts from the same variables.

    A new Keras model per fit retraced its train and predict steps (~1 s a fit, a quarter of a
    cross-fitting fold at the default size), and a new pipeline its row gather. Reset weights,
    dropout seeds and Adam's moments make each fit the fit of a new head built from the same seed.
    """

    def __init__(self, features: "sparse.csr_matrix | SparseRows", params: dict):
        self.params = params
        self.features = features if isinstance(features, SparseRows) else SparseRows(features)
        self.model = build_tfidf_head(self.features.shape[1], params, N_CLASSES)
        compile_classifier(self.model, params)
        self.model.optimizer.build(self.model.trainable_variables)
        self.start = [variable.numpy() for variable in self.state()]
        self.training = SparseBatches(self.features, labelled=True)
        self.predicting = SparseBatches(self.features, labelled=False)

    def state(self) -> list:
        """Every variable a fit changes: the model's (seed generators included) and the optimizer's."""
        return list(self.model.variables) + list(self.model.optimizer.variables)

    def training_batches(self, labels: np.ndarray, batch_size: int, rows: np.ndarray | None = None) -> tf.data.Dataset:
        """Training batches of the given feature rows (all when None), reshuffled each epoch from params.seed."""
        return self.training.select(rows, labels, batch_size, self.params["seed"])

    def fit(self, labels: np.ndarray, epochs: int, batch_size: int, rows: np.ndarray | None = None) -> keras.Model:
        """The head fitted from its start for a fixed number of epochs on the given rows (all when None)."""
        for variable, value in zip(self.state(), self.start):
            variable.assign(value)
        weights = class_weights(labels, N_CLASSES, self.params["class_weights"])
        self.model.fit(self.training_batches(labels, batch_size, rows), epochs=epochs, class_weight=weights,
                       verbose=0)
        return self.model

    def predict(self, batch_size: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities of the given feature rows (all when None) by the head as it stands."""
        return predict_probabilities(self.model, self.predicting.select(rows, None, batch_size, None))


def tfidf_out_of_fold(head: RestartableHead, labels: np.ndarray, folds: np.ndarray, epochs: int, batch_size: int,
                      rows: np.ndarray | None = None) -> np.ndarray:
    """Each row's probabilities from the head refitted on the other folds (epochs and batch size frozen).

    rows: the feature rows that labels and folds describe (all when None).
    """
    rows = np.arange(head.features.shape[0]) if rows is None else np.asarray(rows)

    def fit_predict(fit, held):
        head.fit(labels[fit], epochs, batch_size, rows=rows[fit])
        return head.predict(batch_size, rows=rows[held])

    return cross_fit(fit_predict, folds, N_CLASSES, "text")


def cross_fit_and_refit(head: RestartableHead, labels: np.ndarray, split: pd.DataFrame, epochs: int,
                        batch_size: int) -> tuple[keras.Model, np.ndarray]:
    """Out-of-fold probabilities of the train + validation rows, and the head to serve.

    head: the one early stopping fitted on the train rows. The served head is refitted on train +
    validation for the epochs early stopping chose on the validation rows (params.refit), or is
    that train-only head.
    """
    train_only = head.model.get_weights()
    rows = fitting_rows(split)
    out_of_fold = tfidf_out_of_fold(head, labels[rows], fitting_folds(split), epochs, batch_size, rows=rows)
    if not head.params["refit"]:
        head.model.set_weights(train_only)
        return head.model, out_of_fold
    return head.fit(labels[rows], epochs, batch_size, rows=rows), out_of_fold
