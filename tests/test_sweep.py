"""The local sweep (scripts/sweep.py -> rakuten_mm.tracking.sweep_queue): grid expansion, and a real 2×1
sweep queued on a copy of the tiny pipeline, reported on the validation metric."""

import csv
import io
import os
import re
import signal
import sys
import threading
from pathlib import Path

import pytest
import yaml

from pipeline_utils import copy_checkout, run
from rakuten_mm.tracking.sweep_report import split_metric
from rakuten_mm.tracking.sweeps import DEFAULT_METRIC, combinations, run_command

REPO_ROOT = Path(__file__).resolve().parents[1]
METRIC_KEY = split_metric(DEFAULT_METRIC)[1]
BEST_LINE = re.compile(rf"^best: (\S+) {re.escape(METRIC_KEY)}=([0-9.]+)", re.MULTILINE)


def test_combinations_is_the_cross_product_in_file_order():
    grid = yaml.safe_load((REPO_ROOT / "sweeps" / "text_and_fusion.yaml").read_text())
    assert combinations(grid) == [
        ["train_text.model=tfidf", "train_fusion.method=weighted"],
        ["train_text.model=tfidf", "train_fusion.method=stacking"],
        ["train_text.model=cnn", "train_fusion.method=weighted"],
        ["train_text.model=cnn", "train_fusion.method=stacking"],
    ]
    assert combinations({"a": 1}) == [["a=1"]]


def test_a_command_s_output_is_read_while_a_daemon_it_started_still_holds_it():
    # `dvc queue start` returns at once but leaves worker daemons holding its stdout and stderr.
    result = {}
    reader = threading.Thread(target=lambda: result.update(output=run_command(["sh", "-c", "sleep 600 & echo $!"])),
                              daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "run_command waited for the daemon that holds the command's output"
    daemon = int(result["output"])
    try:
        os.kill(daemon, 0)  # still running: the output was read before it let go of it
    finally:
        os.kill(daemon, signal.SIGTERM)


@pytest.mark.slow
def test_sweep_runs_every_combination_and_reports_the_best(tiny_pipeline, tmp_path):
    repo = copy_checkout(tiny_pipeline[0], tmp_path / "repo")
    # Experiments start from HEAD: commit the results so only the swept stages rerun.
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny results"], repo)
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    (sweeps / "fusion.yaml").write_text("train_fusion.method: [weighted, stacking]\n")
    output = run([sys.executable, str(REPO_ROOT / "scripts" / "sweep.py"), "fusion", "--jobs", "1",
                  "--sweeps-dir", str(sweeps), "--timeout", "300"], repo, timeout=400).stdout
    queued = dict(re.findall(r"^queued (\S+): train_fusion\.method=(\w+)$", output, re.MULTILINE))
    assert sorted(queued.values()) == ["stacking", "weighted"], output
    best_name, best_f1 = BEST_LINE.search(output).groups()
    table = run(["dvc", "exp", "show", "--csv"], repo).stdout
    rows = {row["Experiment"]: row for row in csv.DictReader(io.StringIO(table))}
    for name, method in queued.items():
        assert rows[name]["State"] == "Success" and rows[name]["train_fusion.method"] == method
    scores = {name: float(rows[name][METRIC_KEY]) for name in queued}
    assert best_name == max(scores, key=scores.get)
    assert float(best_f1) == pytest.approx(scores[best_name], abs=1e-4)
    report = (repo / "sweeps" / "reports" / "fusion.md").read_text()
    assert f"Best: **{best_name}**" in report and all(name in report for name in queued)
