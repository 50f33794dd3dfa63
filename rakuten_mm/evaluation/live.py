"""dvclive with metrics under metrics/<stage>/ and plots under plots/<stage>/."""

import os

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


def log_split_scores(live: Live, split: str, labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Log accuracy, weighted and macro F1 of one split's predicted classes as dvclive summary metrics."""
    scores = classification_scores(labels, predicted)
    for name, value in scores.items():
        live.log_metric(f"{split}/{name}", value, plot=False)
    return scores
