"""dvclive with metrics under metrics/<stage>/ and plots under plots/<stage>/."""

import os
import time

import keras
import numpy as np
from dvclive import Live

from rakuten_mm.evaluation.metrics import classification_scores


class StageLive(Live):
    """A dvclive Live whose plots go to a separate root, since DVC reads metrics and plots apart."""

    def __init__(self, stage: str, metrics_root: str = "metrics", plots_root: str = "plots"):
        self._stage_plots_dir = os.path.join(plots_root, stage)
        # dvc.yaml declares metrics and plots itself, so dvclive must not write it (dvclive#456).
        super().__init__(dir=os.path.join(metrics_root, stage), dvcyaml=False, save_dvc_exp=False)

    @property
    def plots_dir(self) -> str:
        """Plots live beside, not inside, the metrics folder."""
        return self._stage_plots_dir


class EpochLogger(keras.callbacks.Callback):
    """Log every Keras epoch metric and the training throughput to dvclive, one step per epoch."""

    def __init__(self, live: Live, train_samples: int):
        super().__init__()
        self.live = live
        self.train_samples = train_samples
        self.epoch_started = 0.0
        self.rates: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Start the epoch's clock."""
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """One dvclive step per epoch: loss, accuracy, their validation twins, samples/s."""
        # The clock includes the validation pass: samples/s is what a whole epoch costs.
        rate = self.train_samples / max(time.perf_counter() - self.epoch_started, 1e-9)
        self.rates.append(rate)
        for name, value in (logs or {}).items():
            self.live.log_metric(f"train/{name}", float(value))
        self.live.log_metric("train/samples_per_second", rate)
        self.live.next_step()

    def on_train_end(self, logs: dict | None = None) -> None:
        """The median epoch throughput, as a summary metric comparable across runs."""
        if self.rates:
            self.live.log_metric("throughput/train_samples_per_second", float(np.median(self.rates)), plot=False)


def log_split_scores(live: Live, split: str, labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Log accuracy, weighted and macro F1 of one split's predicted classes as dvclive summary metrics."""
    scores = classification_scores(labels, predicted)
    for name, value in scores.items():
        live.log_metric(f"{split}/{name}", value, plot=False)
    return scores
