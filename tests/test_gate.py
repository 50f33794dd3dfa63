"""The quality gate on a small git repository with hand-written metrics files (no pipeline)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_utils import run
from rakuten_mm.evaluation.gate import GateError, check_gate, main

METRICS_FILE = "metrics/evaluate/metrics.json"
GATE_PARAMS = {"gate": {"metric": "fusion.f1_weighted", "tolerance": 0.01}}


def write_metrics(repo: Path, fusion_f1: float) -> None:
    """Write a metrics file shaped like the evaluate stage's."""
    path = repo / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fusion": {"f1_weighted": fusion_f1, "accuracy": 0.5}}))


@pytest.fixture
def gate_repo(tmp_path) -> Path:
    """A git repo whose `main` branch has fusion.f1_weighted = 0.80."""
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(GATE_PARAMS))
    write_metrics(tmp_path, 0.80)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "baseline"], tmp_path)
    return tmp_path


def run_gate_cli(repo: Path) -> subprocess.CompletedProcess:
    """The gate as CI runs it, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "rakuten_mm.evaluation.gate", "--rev", "main", "--repo", str(repo)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("new_f1", [0.80, 0.795, 0.85])
def test_gate_passes_within_tolerance_or_on_improvement(gate_repo, new_f1):
    write_metrics(gate_repo, new_f1)
    result = run_gate_cli(gate_repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gate PASS: fusion.f1_weighted")


def test_gate_fails_on_a_drop_beyond_tolerance(gate_repo):
    write_metrics(gate_repo, 0.78)
    result = run_gate_cli(gate_repo)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gate FAIL: fusion.f1_weighted = 0.7800 vs 0.8000 at main")


def test_gate_result_numbers(gate_repo):
    write_metrics(gate_repo, 0.7)
    result = check_gate(gate_repo, "main", "fusion.f1_weighted", 0.01)
    assert (result.baseline, result.current, result.passed) == (0.8, 0.7, False)
    assert result.drop == pytest.approx(0.1)


def test_missing_metric_is_an_error_not_a_pass(gate_repo):
    (gate_repo / METRICS_FILE).write_text(json.dumps({"text": {"f1_weighted": 0.9}}))
    with pytest.raises(GateError, match="fusion.f1_weighted.*not found in workspace"):
        check_gate(gate_repo, "main", "fusion.f1_weighted", 0.01)
    result = run_gate_cli(gate_repo)
    assert result.returncode == 2 and result.stderr.startswith("gate ERROR: metric 'fusion.f1_weighted' not found")


def test_unknown_revision_and_missing_gate_section_are_errors(gate_repo, capsys):
    assert main(["--rev", "no-such-branch", "--repo", str(gate_repo)]) == 2
    assert "cannot read metrics/evaluate/metrics.json at no-such-branch" in capsys.readouterr().err
    (gate_repo / "params.yaml").write_text("other: 1\n")
    assert main(["--repo", str(gate_repo)]) == 2
    assert "needs a `gate:` section" in capsys.readouterr().err


def set_dotted(metrics: dict, dotted_name: str, value: float) -> None:
    """Set metrics["a"]["b"] for "a.b", failing if the path does not exist."""
    *sections, name = dotted_name.split(".")
    for section in sections:
        metrics = metrics[section]
    assert isinstance(metrics[name], float), (dotted_name, metrics[name])
    metrics[name] = value


@pytest.mark.parametrize("drop_in_tolerances, passes", [(0.5, True), (2.0, False)])
def test_the_repository_gate_reads_the_evaluate_metrics_and_holds_its_tolerance(tmp_path, drop_in_tolerances, passes):
    """This repository's `gate:` params against its committed evaluate metrics, in a scratch git repo."""
    root = Path(__file__).resolve().parents[1]
    gate = yaml.safe_load((root / "params.yaml").read_text())["gate"]
    metrics_file = gate.get("file", METRICS_FILE)
    metrics = json.loads((root / metrics_file).read_text())
    (tmp_path / metrics_file).parent.mkdir(parents=True)
    (tmp_path / metrics_file).write_text(json.dumps(metrics))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"gate": gate}))
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "baseline"], tmp_path)
    baseline = metrics
    for section in gate["metric"].split("."):
        assert section in baseline, f"params gate.metric {gate['metric']} is not in the committed {metrics_file}"
        baseline = baseline[section]
    set_dotted(metrics, gate["metric"], baseline - drop_in_tolerances * gate["tolerance"])
    (tmp_path / metrics_file).write_text(json.dumps(metrics))
    result = run_gate_cli(tmp_path)
    assert result.returncode == (0 if passes else 1), result.stdout + result.stderr
    verdict = result.stdout if passes else result.stderr
    assert verdict.startswith(f"gate {'PASS' if passes else 'FAIL'}: {gate['metric']}"), verdict
