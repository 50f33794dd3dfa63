"""Shared fixtures: the repository root and the optional real sample beside it."""

from pathlib import Path

import pytest

from pipeline_utils import copy_repository, run

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = REPO_ROOT.parent / "shared" / "rakuten-real-sample"


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
    """Run the tests that retrain the shared tiny pipeline with other params after all the others."""
    # A stable sort keeps every other test in its usual order.
    items.sort(key=lambda item: item.get_closest_marker("changes_shared_pipeline") is not None)
