"""benchmarks/bench_real_sample.py on 2 folds of a tiny synthetic folder, so that it cannot rot."""

import json
import subprocess
import sys

import pytest

from pipeline_utils import REPO_ROOT, TINY_PARAMS
from rakuten_mm.data.synthetic import generate_sample

pytestmark = pytest.mark.slow
MODELS = ("text", "image", "baseline", "fusion")


def test_the_real_data_benchmark_runs_the_stages_on_k_folds(tmp_path):
    data = tmp_path / "challenge"
    data.mkdir()
    generate_sample(data, n_labelled=300, n_unlabelled=0, seed=3, workers=1)
    out = tmp_path / "result"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_real_sample.py", str(data), "--folds", "2", "--workdir",
         str(tmp_path / "work"), "--out", str(out), "--figure", str(tmp_path / "curve.png"),
         "--params-file", str(TINY_PARAMS),
         "--set", "train_text.epochs=2", "--set", "train_image.epochs=1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["rows"] == 300 and len(summary["per_fold"]) == 2
    folds = summary["per_fold"]
    # Each fold's scores come from that fold's own evaluate run: the folds differ.
    assert folds[0]["test"] != folds[1]["test"]
    for fold in folds:
        # A fold that serves one member scores exactly that member on its test rows.
        assert fold["served"] in ("stacking", "weighted", "text", "baseline"), fold["served"]
        if fold["served"] in MODELS:
            assert fold["test"]["fusion"] == fold["test"][fold["served"]]
    targets = summary["summary"]["targets"]
    assert targets["served_minus_baseline"] == pytest.approx(
        summary["summary"]["fusion"]["mean"] - summary["summary"]["baseline"]["mean"])
    table = out.with_suffix(".md").read_text()
    assert "| fusion |" in table and "2-fold" in table and "fold 2: " + folds[1]["served"] in table
    # The review rule of each fold: the threshold its own train_fusion chose, the test share it filed.
    for fold in folds:
        review = fold["review"]
        assert 0 <= review["test_coverage"] <= 1 and 0 < review["threshold"] <= 1
        grid, coverage = fold["curve"]["threshold"], fold["curve"]["test_coverage"]
        below = max(i for i, t in enumerate(grid) if t <= review["threshold"])
        # Coverage falls as the threshold rises: the grid points around the threshold bracket its share
        # (the curve file keeps 6 decimals).
        assert coverage[below] >= review["test_coverage"] - 1e-6
        assert below + 1 == len(grid) or coverage[below + 1] <= review["test_coverage"] + 1e-6
    assert "| 1 | " in table and "test coverage" in table
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
