"""The retraining DAG (airflow/dags) in Airflow's own venv: it loads, and dag.test() runs it for real.

The end-to-end tests share one project checkout made from the tiny pipeline: a `production` tag,
a moto S3 remote on 127.0.0.1 holding it, a real uvicorn API serving a deployed copy of its models,
and new params (another fusion method) to retrain with. Three runs, in order: no drift (nothing runs),
a gate that cannot pass (nothing rolled out, workspace restored), drift with a passing gate
(pushed, registered, published, promoted and reloaded by the API).
"""

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from api_support import add_users
from monitoring_support import combined_shift, resampled_predictions, synthetic_profiles, write_prediction_log
from pipeline_utils import GIT_IDENTITY, copy_checkout, run
from rakuten_mm.monitoring.sources import reference_predictions
from rakuten_mm.serving.versions import identify_models
from test_api_server import free_port, wait_until_up
from test_remote import cached_outs, file_md5s, moto_server, point_remote_at, remote_bucket, s3_client

REPO_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_PYTHON = Path(os.environ.get("RAKUTEN_AIRFLOW_PYTHON", REPO_ROOT / ".venv-airflow" / "bin" / "python"))
CHECK_DAG = REPO_ROOT / "airflow" / "check_dag.py"
DAG_ID = "rakuten_retrain"
PRODUCTION_TAG, IMPOSSIBLE_BRANCH = "production", "impossible-baseline"
N_PRODUCTION = 600
ROLL_OUT_TASKS = ("dvc_push", "register_model", "publish_release", "set_candidate", "promote_candidate")
EXPECTED_GRAPH = {
    "snapshot_workspace": ["dvc_pull"],
    "dvc_pull": ["check_drift", "restore_workspace"],
    "check_drift": ["export_corrections"],
    "export_corrections": ["restore_workspace", "track_corrections"],
    "track_corrections": ["dvc_repro", "restore_workspace"],
    "dvc_repro": ["quality_gate", "restore_workspace"],
    "quality_gate": ["dvc_push", "restore_workspace"],
    "dvc_push": ["register_model"],
    "register_model": ["publish_release"],
    "publish_release": ["set_candidate"],
    "set_candidate": ["promote_candidate"],
    "promote_candidate": [],
    "restore_workspace": [],
}


def airflow_environment(home: Path, extra: dict | None = None) -> dict:
    """This environment for Airflow's venv: its own home and sqlite database, our DAG folder, no AWS keys."""
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    return {**env, **GIT_IDENTITY, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "airflow" / "dags"),
            # A retry after an unexpected failure should not sleep two minutes in a test.
            "RAKUTEN_RETRAIN_RETRY_DELAY_S": "1", "RAKUTEN_RETRAIN_RETRIES": "1", **(extra or {})}


def check_dag(env: dict, tmp: Path, *args: str, timeout: int = 900) -> dict:
    """Run airflow/check_dag.py with Airflow's python; its JSON report."""
    output = tmp / f"report-{secrets.token_hex(4)}.json"
    result = subprocess.run([str(AIRFLOW_PYTHON), str(CHECK_DAG), *args, "--output", str(output)], env=env,
                            cwd=tmp, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0 and output.is_file(), f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    report = json.loads(output.read_text())
    report["log"] = result.stdout + result.stderr
    return report


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    """An empty AIRFLOW_HOME (parsing DAGs needs no database)."""
    if not AIRFLOW_PYTHON.is_file():
        pytest.fail(f"{AIRFLOW_PYTHON} not found: run `make airflow-venv` (Airflow has its own venv)")
    return tmp_path_factory.mktemp("airflow-home")


@pytest.fixture(scope="module")
def migrated_airflow_home(airflow_home) -> Path:
    """The AIRFLOW_HOME with its sqlite metadata database created, as dag.test() needs."""
    result = subprocess.run([str(AIRFLOW_PYTHON), "-m", "airflow", "db", "migrate"],
                            env=airflow_environment(airflow_home), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return airflow_home


def test_dag_folder_loads_with_the_expected_tasks(airflow_home, tmp_path):
    report = check_dag(airflow_environment(airflow_home), tmp_path, "describe")
    assert report["import_errors"] == {}
    assert sorted(report["dags"]) == sorted([DAG_ID, "rakuten_sweep"])  # the sweep DAG: test_sweep_workers.py
    dag = report["dags"][DAG_ID]
    assert {task: spec["downstream"] for task, spec in dag["tasks"].items()} == EXPECTED_GRAPH
    assert all(spec["retries"] >= 1 for spec in dag["tasks"].values())
    assert dag["tasks"]["restore_workspace"]["trigger_rule"] == "one_failed"
    # The repro runs when the corrections export is switched off (skipped), not when it failed.
    assert dag["tasks"]["dvc_repro"]["trigger_rule"] == "none_failed"
    assert dag["max_active_runs"] == 1 and dag["schedule"] == "@daily"
    assert {"project_dir", "python", "production_rev", "require_drift", "register_model", "export_corrections",
            "review_database"} <= set(dag["params"])


def git(project: Path, *args: str) -> str:
    """A git command in the project checkout; its output."""
    return run(["git", *args], project).stdout.strip()


def commit_params_change(project: Path, change) -> None:
    """Apply change(params) to params.yaml and commit it."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    change(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(project, "commit", "-qam", "retrain with new params")


def commit_impossible_baseline(project: Path) -> None:
    """A branch whose committed gate metric is above any possible F1: a gate against it always fails."""
    gate = yaml.safe_load((project / "params.yaml").read_text())["gate"]
    metrics_file = project / gate.get("file", "metrics/evaluate/metrics.json")
    git(project, "checkout", "-q", "-b", IMPOSSIBLE_BRANCH)
    metrics = json.loads(metrics_file.read_text())
    *sections, name = gate["metric"].split(".")  # e.g. val.fusion.f1_weighted
    section = metrics
    for key in sections:
        section = section[key]
    section[name] = 2.0
    metrics_file.write_text(json.dumps(metrics))
    git(project, "commit", "-qam", "impossible baseline")
    git(project, "checkout", "-q", "-")


def toggled_fusion(params: dict) -> None:
    """Retrain the fusion with the other method; a gate tolerance wide enough for that change."""
    params["train_fusion"]["method"] = "stacking" if params["train_fusion"]["method"] == "weighted" else "weighted"
    params["gate"]["tolerance"] = 0.5


@pytest.fixture(scope="module")
def project(tiny_pipeline, tmp_path_factory) -> Path:
    """The tiny pipeline's checkout, committed and tagged `production`, then new params committed on top."""
    source, _ = tiny_pipeline
    project = copy_checkout(source, tmp_path_factory.mktemp("retrain") / "project")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "production model")
    git(project, "tag", PRODUCTION_TAG)
    commit_impossible_baseline(project)
    commit_params_change(project, toggled_fusion)
    return project


@pytest.fixture(scope="module")
def remote(project, prediction_logs):
    """A moto S3 remote holding the production state; the checkout then loses its cache and data (pulled back).

    After prediction_logs, which reads the reference predictions before they are deleted.
    """
    bucket = remote_bucket(project)
    with moto_server(free_port(), bucket) as url:
        point_remote_at(project, url)
        env = {**os.environ, "AWS_MAX_ATTEMPTS": "1"}
        subprocess.run([sys.executable, "-m", "dvc", "push", "--run-cache"], cwd=project, env=env, check=True,
                       capture_output=True)
        shutil.rmtree(project / ".dvc" / "cache")
        # models/ stays: the API serves it from the start.
        for out in cached_outs(project):
            if out.startswith("data/"):
                shutil.rmtree(project / out) if (project / out).is_dir() else (project / out).unlink()
        yield s3_client(url), bucket


def bucket_keys(remote) -> set[str]:
    """Every object key in the remote's bucket."""
    client, bucket = remote
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


@pytest.fixture(scope="module")
def prediction_logs(project, tmp_path_factory) -> dict[str, Path]:
    """Production logs as the API writes them: `calm` traffic like the reference, `drifted` English traffic."""
    settings = yaml.safe_load((project / "params.yaml").read_text())["monitor"]
    predictions = reference_predictions(project / settings["reference"]["probabilities"])
    folder, now = tmp_path_factory.mktemp("production"), datetime.now(timezone.utc)
    calm = pd.concat([synthetic_profiles(N_PRODUCTION, seed=51),
                      resampled_predictions(predictions, N_PRODUCTION, seed=52)], axis=1)
    english = pd.concat([synthetic_profiles(N_PRODUCTION, seed=53, english=True),
                         resampled_predictions(predictions, N_PRODUCTION, seed=54)], axis=1)
    write_prediction_log(folder / "calm.jsonl", calm, end=now - timedelta(minutes=5))
    write_prediction_log(folder / "drifted.jsonl", combined_shift(english, seed=55), end=now - timedelta(minutes=5))
    return {"calm": folder / "calm.jsonl", "drifted": folder / "drifted.jsonl"}


def deploy_production(project: Path, folder: Path) -> Path:
    """The production models as deployed: a copy of the checkout's models/ with its dvc.lock beside it."""
    shutil.copytree(project / "models", folder / "models")
    shutil.copy2(project / "dvc.lock", folder / "dvc.lock")
    return folder / "models"


@pytest.fixture(scope="module")
def api(project, prediction_logs, tmp_path_factory):
    """A real uvicorn API serving the production models, with one admin user; yields (URL, settings, admin URI).

    It serves a deployed copy, as in production: the DAG retrains in the checkout's models/.
    """
    tmp = tmp_path_factory.mktemp("api")
    served = deploy_production(project, tmp / "production")
    (admin, password), = add_users(tmp / "users.json", prefix="admin", admin=True).items()
    port = free_port()
    # Shared with the rollout command the DAG runs. A long check period: only the DAG's reload
    # call, not the API's own look at the rollout file, can switch models within the test.
    settings = {"RAKUTEN_API_MODELS_DIR": str(served), "RAKUTEN_API_DVC_LOCK": str(served.parent / "dvc.lock"),
                "RAKUTEN_API_ROLLOUT_FILE": str(tmp / "deployments" / "rollout.json"),
                "RAKUTEN_API_ROLLOUT_CHECK_SECONDS": "3600"}
    env = {**os.environ, **settings, "RAKUTEN_API_SECRET_KEY": secrets.token_urlsafe(48),
           "RAKUTEN_API_USERS_FILE": str(tmp / "users.json"), "RAKUTEN_API_LOG_DIR": str(tmp / "logs"),
           "RAKUTEN_API_PREDICTION_LOG": str(tmp / "logs" / "predictions.jsonl"),
           "RAKUTEN_API_DRIFT_REPORT": str(tmp / "drift.json"), "PYTHONPATH": str(REPO_ROOT)}
    output = tmp / "server.out"
    with output.open("w") as sink:
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", "--host",
                                   "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log"],
                                  cwd=tmp, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server, output)
        yield url, settings, f"http://{admin}:{password}@127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def retrain(migrated_airflow_home, project, remote, api, tmp_path_factory):
    """run(**params) -> the JSON report of one dag.test() run of the DAG on the checkout."""
    tmp = tmp_path_factory.mktemp("runs")
    _, api_settings, admin_uri = api
    env = airflow_environment(migrated_airflow_home, {**api_settings, "AIRFLOW_CONN_RAKUTEN_API": admin_uri,
                                             "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
                                             "AWS_MAX_ATTEMPTS": "1"})

    def run_dag(**params) -> dict:
        # No review queue here (the API's export command is tested with it): the corrections steps are skipped.
        conf = {"project_dir": str(project), "python": sys.executable, "releases_dir": str(tmp / "releases"),
                "candidate_share": 0.5, "export_corrections": False, **params}
        return check_dag(env, tmp, "run", "--dag-id", DAG_ID, "--conf", json.dumps(conf))

    run_dag.folder = tmp
    return run_dag


def model_files(folder: Path) -> dict[str, str]:
    """md5 of the model files under folder/models and of folder/dvc.lock."""
    digests = file_md5s(folder, ["models", "dvc.lock"])
    assert any(name.startswith("models/fusion/") for name in digests)
    return digests


def served_folder(api) -> Path:
    """The folder holding the deployed production models/ and dvc.lock."""
    return Path(api[1]["RAKUTEN_API_MODELS_DIR"]).parent


def served_version(api) -> str:
    """The current model version the running API reports."""
    status = httpx.get(f"{api[0]}/status", timeout=30).json()
    assert status["models_loaded"] and status.get("candidate") is None, status
    return status["model_version"]


def monitor_args(log: Path, tmp: Path) -> list[str]:
    """The monitor's arguments for one production log (report beside it, last day only)."""
    return ["--log", str(log), "--report", str(tmp / f"drift-{log.stem}.json"), "--last-days", "1"]


@pytest.mark.slow
def test_no_drift_skips_the_retraining(retrain, project, api, prediction_logs, remote):
    files_before, version_before, keys_before = model_files(project), served_version(api), bucket_keys(remote)
    report = retrain(require_drift=True, monitor_args=monitor_args(prediction_logs["calm"], retrain.folder))
    tasks = report["tasks"]
    assert [tasks[name] for name in ("snapshot_workspace", "dvc_pull", "check_drift")] == ["success"] * 3, tasks
    assert {tasks[name] for name in list(EXPECTED_GRAPH)[3:]} == {"skipped"}, tasks
    assert report["state"] == "success"
    assert "no drift: nothing to retrain" in report["log"]
    # dvc pull brought back the data the checkout had lost (the monitor's reference is part of it).
    assert (project / "data" / "interim").is_dir()
    assert model_files(project) == files_before and served_version(api) == version_before
    assert bucket_keys(remote) == keys_before


@pytest.mark.slow
def test_failed_gate_rolls_nothing_out_and_restores_the_checkout(retrain, project, api, remote):
    checkout_before, served_before = model_files(project), model_files(served_folder(api))
    version_before, keys_before = served_version(api), bucket_keys(remote)
    published_before = published_state(api, retrain.folder)
    report = retrain(require_drift=False, production_rev=IMPOSSIBLE_BRANCH)
    tasks = report["tasks"]
    assert tasks["dvc_repro"] == "success" and tasks["quality_gate"] == "failed", tasks
    assert [tasks[name] for name in ROLL_OUT_TASKS] == ["upstream_failed"] * len(ROLL_OUT_TASKS)
    assert tasks["restore_workspace"] == "success" and report["state"] == "failed"
    # The pipeline did retrain (the fusion with the new method), and the gate said no.
    assert "Running stage 'train_fusion'" in report["log"] and "gate FAIL" in report["log"]
    # The served model is untouched: same files, same version in the API, nothing published or pushed.
    assert model_files(served_folder(api)) == served_before and served_version(api) == version_before
    # The checkout is back to the models its dvc.lock and the monitor's reference describe.
    assert model_files(project) == checkout_before
    # No rollout, release or registration (whatever earlier runs of the module left there).
    assert published_state(api, retrain.folder) == published_before
    assert bucket_keys(remote) == keys_before


def published_state(api, runs_folder: Path) -> tuple:
    """The rollout file, the release folders and the MLflow registrations: what a passed gate publishes."""
    rollout_file = Path(api[1]["RAKUTEN_API_ROLLOUT_FILE"])
    releases = runs_folder / "releases"
    return (rollout_file.read_text() if rollout_file.exists() else None,
            sorted(path.name for path in releases.iterdir()) if releases.is_dir() else [],
            registered_versions(runs_folder / "mlflow.db") if (runs_folder / "mlflow.db").exists() else [])


def restore_checkout(project: Path, sha: str) -> None:
    """Put the checkout back as in commit sha (the DAG's own restore): tracked files, then the outs they name."""
    run(["git", "restore", f"--source={sha}", "--worktree", "--", "."], project)
    run([sys.executable, "-m", "dvc", "checkout", "--force"], project)


def registered_versions(tracking_db: Path, model_name: str = "rakuten-mm") -> list[dict]:
    """Tags of each version of a registered model in an MLflow sqlite store."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tracking_db}")
    return [version.tags for version in client.search_model_versions(f"name = '{model_name}'")]


@pytest.mark.slow
def test_drift_and_passed_gate_push_register_and_promote(retrain, project, api, prediction_logs, remote):
    version_before, keys_before = served_version(api), bucket_keys(remote)
    # The other tests of this module need the checkout as the fixtures made it (params changed, not yet
    # retrained; the reference the calm log was drawn from): put it back afterwards, whatever the order.
    assert git(project, "status", "--porcelain", "--untracked-files=no") == ""  # committed: HEAD is the state
    checkout = git(project, "rev-parse", "HEAD")
    try:
        check_release_run(retrain, project, api, prediction_logs, remote, version_before, keys_before)
    finally:
        restore_checkout(project, checkout)


def check_release_run(retrain, project, api, prediction_logs, remote, version_before, keys_before) -> None:
    """The DAG on drifted traffic: retrain, gate passed, pushed, registered, released and promoted."""
    report = retrain(require_drift=True, production_rev=PRODUCTION_TAG,
                     monitor_args=monitor_args(prediction_logs["drifted"], retrain.folder))
    tasks = report["tasks"]
    assert {name: state for name, state in tasks.items() if state != "success"} == {
        "restore_workspace": "skipped", "export_corrections": "skipped", "track_corrections": "skipped"}, \
        report["log"][-6000:]
    assert report["state"] == "success" and "drift detected: retraining" in report["log"]
    release = Path(report["xcom"]["publish_release"])
    new_version = identify_models(release, project / "models", project / "dvc.lock").version
    assert new_version != version_before
    # The rollout command's reload call switched the API (its own look at the file is an hour away).
    assert f"API reloaded: current {new_version}" in report["log"]
    assert served_version(api) == new_version
    rollout = json.loads(Path(api[1]["RAKUTEN_API_ROLLOUT_FILE"]).read_text())
    assert (rollout["current"], rollout["candidate"]) == (str(release), None)
    assert Path(rollout["previous"]).resolve() == (served_folder(api) / "models").resolve()
    # The new models reached the remote, and MLflow registered this very version.
    fusion_md5 = hashlib.md5((release / "fusion" / "fusion.json").read_bytes()).hexdigest()
    # DVC stores a file under files/md5/<first 2 hex digits>/<the other 30>.
    assert any(key.endswith(f"/{fusion_md5[:2]}/{fusion_md5[2:]}") for key in bucket_keys(remote) - keys_before)
    assert [tags["model_version"] for tags in registered_versions(retrain.folder / "mlflow.db")] == [new_version]
