"""Shared fixtures: the repository root and the optional real sample beside it."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = REPO_ROOT.parent / "shared" / "rakuten-real-sample"


@pytest.fixture
def real_sample() -> Path:
    """The 540-row real sample folder, or skip when this machine does not have it."""
    if not (REAL_SAMPLE / "X_train_update.csv").is_file():
        pytest.skip(f"real sample not found at {REAL_SAMPLE}")
    return REAL_SAMPLE
