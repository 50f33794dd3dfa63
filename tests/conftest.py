"""Shared fixtures: the repository root, the optional real sample beside it, and the tiny pipeline."""

import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from pipeline_utils import copy_repository, run

REPO_ROOT = Path(__file__).resolve().parents[1]
# Not in the repository (its README forbids copying it in); RAKUTEN_REAL_SAMPLE points to a copy elsewhere.
REAL_SAMPLE = Path(os.environ.get("RAKUTEN_REAL_SAMPLE", REPO_ROOT.parent / "shared" / "rakuten-real-sample"))
# A tiny pipeline folder an earlier run built (its repro.log beside repo/), reused read-only to skip the
# 3-minute `dvc repro` while working on tests that only need its models; unset in CI.
REUSED_TINY_PIPELINE = os.environ.get("RAKUTEN_TINY_PIPELINE")


@pytest.fixture
def real_sample() -> Path:
    """The 540-row real sample folder, or skip when this machine does not have it."""
    if not (REAL_SAMPLE / "X_train_update.csv").is_file():
        pytest.skip(f"real sample not found at {REAL_SAMPLE}")
    return REAL_SAMPLE


def run_root(tmp_path_factory) -> Path:
    """The temporary folder of this whole pytest run: shared by its xdist workers, if any."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> tuple[Path, str]:
    """A temporary copy of the repository after a real `dvc repro` on tests/tiny_params.yaml.

    Returns (repo path, the repro's output). Built once per pytest run, whichever xdist worker
    asks first (the others wait for it), and shared read-only by every test that needs trained
    models: a test that changes it works on a copy (`pipeline_utils.copy_checkout`).
    """
    folder = Path(REUSED_TINY_PIPELINE) if REUSED_TINY_PIPELINE else run_root(tmp_path_factory) / "tiny-pipeline"
    log = folder / "repro.log"
    with FileLock(f"{folder}.lock"):
        if not log.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker
            folder.mkdir()
            result = run(["dvc", "repro"], copy_repository(folder / "repo"), timeout=900)
            log.write_text(result.stdout + result.stderr)
    return folder / "repo", log.read_text()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the real-sample tests (so that CI can deselect them by name); order the files for two workers.

    `make test` hands whole files to its xdist workers in this order. The first file that needs the
    tiny pipeline starts its build; the files that do not need it come next, so that the other
    worker runs them instead of waiting about a minute for the build; then the long files, so that
    they do not leave one worker busy with them at the end; then the rest.
    """
    for item in items:
        if "real_sample" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_sample)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    pipeline_files = {item.path for item in items if "tiny_pipeline" in getattr(item, "fixturenames", ())}
    builder = next((item.path for item in items if item.path in slow_files & pipeline_files), None)

    def rank(item: pytest.Item) -> int:
        """0: the build's file, 1: files without the pipeline, 2: slow files, 3: the rest."""
        if item.path == builder:
            return 0
        if item.path not in pipeline_files:
            return 1
        return 2 if item.path in slow_files else 3

    # A stable sort keeps every file's tests in their usual order.
    items.sort(key=rank)
