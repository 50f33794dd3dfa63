"""Sweeps across machines, the parts that need no pipeline: the plan of a sweep file at a commit, the
best experiment and the report (validation chooses, test is only shown), the worker's options."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_utils import run
from rakuten_mm.tracking import sweep_worker
from rakuten_mm.tracking.sweep_report import (Experiment, best_experiment, missing_experiments, render_report,
                                              shown_experiments)
from rakuten_mm.tracking.sweeps import parameter_sets, plan

REPO_ROOT = Path(__file__).resolve().parents[1]
METRICS_FILE = "metrics/evaluate/metrics.json"


def scores(val_f1: float, test_f1: float) -> dict:
    """A flattened metrics file in the evaluate stage's layout, with one fusion score per split."""
    return {"val.fusion.f1_weighted": val_f1, "test.fusion.f1_weighted": test_f1,
            "val.text.accuracy": val_f1 / 2, "test.text.accuracy": test_f1 / 2, "per_class_f1.10": 0.5}


def sweep_plan(*params: list[str]) -> dict:
    """A plan of sweep `s` with one experiment per parameter set."""
    return {"sweep": "s", "sweep_file": "sweeps/s.yaml", "commit": "c" * 40,
            "experiments": [{"index": i, "name": f"s-{i}", "params": p} for i, p in enumerate(params)]}


def test_plan_reads_the_sweep_file_at_the_commit_not_in_the_working_tree(tmp_path):
    run(["git", "init", "-q"], tmp_path)
    sweep = tmp_path / "sweeps" / "grid.yaml"
    sweep.parent.mkdir()
    sweep.write_text("train_text.model: [tfidf, cnn]\ntrain_fusion.method: [weighted, stacking]\nseed: 3\n")
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "sweep"], tmp_path)
    commit = run(["git", "rev-parse", "HEAD"], tmp_path).stdout.strip()
    sweep.write_text("train_text.model: [bilstm]\n")  # uncommitted: not what the workers will clone
    result = plan(tmp_path, "sweeps/grid.yaml", "HEAD")
    assert result["commit"] == commit and result["sweep"] == "grid"
    assert [(item["index"], item["name"], item["params"]) for item in result["experiments"]] == [
        (0, "grid-0", ["train_text.model=tfidf", "train_fusion.method=weighted", "seed=3"]),
        (1, "grid-1", ["train_text.model=tfidf", "train_fusion.method=stacking", "seed=3"]),
        (2, "grid-2", ["train_text.model=cnn", "train_fusion.method=weighted", "seed=3"]),
        (3, "grid-3", ["train_text.model=cnn", "train_fusion.method=stacking", "seed=3"]),
    ]
    assert parameter_sets(sweep) == [["train_text.model=bilstm"]]
    with pytest.raises(Exception, match="missing.yaml"):
        plan(tmp_path, "sweeps/missing.yaml", "HEAD")


def test_the_validation_score_chooses_even_when_the_test_score_disagrees():
    by_validation = Experiment("s-0", "a" * 40, {"train_fusion.method": "weighted"}, scores(0.80, 0.70))
    by_test = Experiment("s-1", "b" * 40, {"train_fusion.method": "stacking"}, scores(0.75, 0.90))
    assert best_experiment([by_test, by_validation], "val.fusion.f1_weighted") is by_validation
    assert best_experiment([by_test, by_validation], "test.fusion.f1_weighted") is by_test
    with pytest.raises(ValueError, match="val.fusion.f1_weighted"):
        best_experiment([Experiment("old", "c" * 40, {}, {"fusion.f1_weighted": 0.9})], "val.fusion.f1_weighted")


def test_report_lists_params_validation_and_test_scores_and_the_missing_experiments():
    planned = sweep_plan(["train_fusion.method=weighted"], ["train_fusion.method=stacking"],
                         ["train_fusion.method=mean"])
    found = [Experiment("s-0", "a" * 40, {}, scores(0.80, 0.70)), Experiment("s-1", "b" * 40, {}, scores(0.75, 0.90)),
             Experiment("other-0", "d" * 40, {}, scores(0.99, 0.99))]  # not of this sweep: ignored
    text, best = render_report(planned, found, f"{METRICS_FILE}:val.fusion.f1_weighted")
    assert best.name == "s-0"
    assert "Best: **s-0** (`aaaaaaa`): `dvc exp pull origin s-0 && dvc exp apply s-0`" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| experiment | train_fusion.method | val.fusion.f1_weighted | test.fusion.f1_weighted |"
    assert rows[1:4] == ["| **s-0** | weighted | 0.8000 | 0.7000 |", "| s-1 | stacking | 0.7500 | 0.9000 |",
                         "| s-2 | mean | not on the git remote (failed, or still running) |  |"]
    assert "| fusion.f1_weighted | 0.8000 | 0.7000 |" in text and "| text.accuracy | 0.4000 | 0.3500 |" in text
    assert "other-0" not in text and "per_class_f1" not in text
    assert missing_experiments(planned, found) == ["s-2"]


def test_equal_scores_go_to_the_lowest_index_whatever_the_listing_order():
    planned = sweep_plan(["a=1"], ["a=2"], ["a=3"])
    listed = [Experiment(f"s-{i}", str(i) * 40, {}, scores(0.8 if i else 0.7, 0.5)) for i in (2, 1, 0)]
    assert render_report(planned, listed, f"{METRICS_FILE}:val.fusion.f1_weighted")[1].name == "s-1"


def test_experiments_are_read_from_dvc_exp_show_json():
    metrics = {"val": {"fusion": {"f1_weighted": 0.8}}, "test": {"fusion": {"f1_weighted": 0.7}}}
    show = [{"rev": "workspace", "name": None, "data": {}, "experiments": None},
            {"rev": "c" * 40, "name": "main", "data": {}, "experiments": [
                {"name": "s-0", "executor": None, "revs": [{
                    "rev": "a" * 40, "name": "s-0", "experiments": None, "error": None,
                    "data": {"params": {"params.yaml": {"data": {"train_fusion": {"method": "stacking"}}}},
                             "metrics": {METRICS_FILE: {"data": metrics}, "metrics/latency.json": {"data": {"x": 1}}}},
                }]}]}]
    (experiment,) = shown_experiments(json.loads(json.dumps(show)), METRICS_FILE)
    assert experiment == Experiment("s-0", "a" * 40, {"train_fusion.method": "stacking"},
                                    {"val.fusion.f1_weighted": 0.8, "test.fusion.f1_weighted": 0.7})


def test_worker_takes_its_index_from_the_kubernetes_completion_index(monkeypatch):
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    monkeypatch.setenv("RAKUTEN_SWEEP_FILE", "sweeps/text_and_fusion.yaml")
    monkeypatch.setenv("RAKUTEN_SWEEP_REPO", "https://git.example.invalid/r.git")
    args = sweep_worker.parse_args([])
    assert (args.index, args.sweep, args.rev, args.workdir) == (3, "sweeps/text_and_fusion.yaml", "HEAD", None)
    assert sweep_worker.parse_args(["--index", "0", "--rev", "abc"]).index == 0


def test_worker_without_a_repository_or_with_an_index_out_of_range_fails(tmp_path):
    env_free = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    usage = subprocess.run([sys.executable, "-m", "rakuten_mm.tracking.sweep_worker", "--sweep", "sweeps/x.yaml"],
                           cwd=REPO_ROOT, env=env_free, capture_output=True, text=True)
    assert usage.returncode == 2 and "--index" in usage.stderr and "--repo" in usage.stderr
    origin = tmp_path / "origin"
    origin.mkdir()
    run(["git", "init", "-q"], origin)
    (origin / "sweeps").mkdir()
    (origin / "sweeps" / "x.yaml").write_text("a: [1, 2]\n")
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "sweep"], origin)
    out_of_range = subprocess.run([sys.executable, "-m", "rakuten_mm.tracking.sweep_worker", "--sweep",
                                   "sweeps/x.yaml", "--index", "2", "--repo", str(origin),
                                   "--workdir", str(tmp_path / "work")],
                                  cwd=REPO_ROOT, capture_output=True, text=True)
    assert out_of_range.returncode == 1
    assert "sweeps/x.yaml has 2 parameter sets: no index 2" in out_of_range.stdout
