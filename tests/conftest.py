"""Shared fixtures: the repository root and the optional real sample beside it."""

import os
from pathlib import Path

import pytest

from pipeline_utils import copy_repository, run

REPO_ROOT = Path(__file__).resolve().parents[1]
# Not in the repository (its README forbids copying it in); RAKUTEN_REAL_SAMPLE points to a copy elsewhere.
REAL_SAMPLE = Path(os.environ.get("RAKUTEN_REAL_SAMPLE", REPO_ROOT.parent / "shared" / "rakuten-real-sample"))


@pytest.fixture
def real_sample() -> Path:
    """The 540-row real sample folder, or skip when this machine does not have it."""
    if not (REAL_SAMPLE / "X_train_update.csv").is_file():
        pytest.skip(f"real sample not found at {REAL_SAMPLE}")
    return REAL_SAMPLE


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> tuple[Path, str]:
    """A temporary copy of the repository after a real `dvc repro` on tests/tiny_params.yaml.

    Returns (repo path, the repro's output). Shared by every test that needs trained models.
    """
    repo = copy_repository(tmp_path_factory.mktemp("pipeline"))
    result = run(["dvc", "repro"], repo, timeout=900)
    return repo, result.stdout + result.stderr


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the real-sample tests (so CI can deselect them by name); run the retraining ones last."""
    for item in items:
        if "real_sample" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_sample)
    # A stable sort keeps every other test in its usual order.
    items.sort(key=lambda item: item.get_closest_marker("changes_shared_pipeline") is not None)
