"""Promote and roll back over HTTP: the rollout command's file edits, then a reload of the served models.

The same state changes as `python -m rakuten_mm.serving.rollout promote|rollback`; when the new models
cannot be loaded the file is put back, as the command does, and the previous models stay served.
"""

from collections.abc import Callable

from rakuten_mm.serving.deployment import Deployment, ReloadError, Served
from rakuten_mm.serving.rollout_state import (
    RolloutState, edit_state, promoted, read_state, restore_state, rolled_back,
)

ACTIONS: dict[str, Callable[[RolloutState], RolloutState]] = {"promote": promoted, "rollback": rolled_back}


def rollout_file_state(deployment: Deployment) -> RolloutState:
    """What the rollout file says now (RAKUTEN_API_MODELS_DIR alone when there is no file)."""
    settings = deployment.settings
    return read_state(settings.rollout_file, settings.models_dir)


def apply_rollout_action(deployment: Deployment, action: str) -> tuple[Served, bool]:
    """Edit the rollout file for promote or rollback and load it; (served, other workers notified).

    RolloutError when there is nothing to promote or roll back to; ReloadError (file restored) when
    the models it names cannot be loaded.
    """
    settings = deployment.settings
    before, _ = edit_state(settings.rollout_file, settings.models_dir, ACTIONS[action])
    try:
        # reuse: a promoted candidate is already loaded, so a promotion loads nothing.
        return deployment.reload(reuse=True)
    except ReloadError:
        restore_state(settings.rollout_file, before)
        raise
