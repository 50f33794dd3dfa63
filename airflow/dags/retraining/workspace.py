"""Snapshot and restore of the checkout's DVC outputs, so that a rejected model does not stay in it.

A run whose pull, repro or gate fails puts back the models, dvc.lock and metrics it started from:
the checkout keeps describing the model in production (the monitor compares traffic with its data
and predictions), and the next run starts from there.
"""

from retraining.project import Project

# One ref per checkout: runs of the DAG never overlap (max_active_runs=1).
SNAPSHOT_REF = "refs/rakuten-retrain/before-run"


def snapshot_workspace(project: Project) -> str:
    """Record the tracked files as they are (dvc.lock, metrics) in a git commit; return its sha."""
    # `git stash create` makes a commit of the uncommitted changes without touching the tree;
    # it prints nothing when there are none, and then HEAD is the state.
    sha = project.git("stash", "create") or project.git("rev-parse", "HEAD")
    # A ref keeps the commit from garbage collection until the next run.
    project.git("update-ref", SNAPSHOT_REF, sha)
    return sha


def restore_workspace(project: Project, sha: str) -> None:
    """Put the tracked files back as in snapshot `sha`, then the DVC-cached outputs they name."""
    project.git("restore", f"--source={sha}", "--worktree", "--", ".")
    # The outs of the restored dvc.lock are in the local cache: the run pulled or produced them.
    project.dvc("checkout", "--force")
