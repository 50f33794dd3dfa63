"""Retraining DAG: on drift (or on demand) reproduce the pipeline, gate it, and only then push, register, roll out.

    snapshot_workspace -> dvc_pull -> check_drift -> export_corrections -> track_corrections -> dvc_repro
        -> quality_gate -> dvc_push -> register_model -> publish_release -> set_candidate -> promote_candidate
    restore_workspace runs instead when the pull, the export, the tracking, the repro or the gate fails.

export_corrections writes the reviewers' decisions (the API's review queue) as a challenge-layout
folder under corrections/ (`python -m rakuten_mm.serving.review export`); track_corrections `dvc add`s
it and lists it in params.yaml `import.corrections`, so that dvc_repro trains on the corrected labels.
Both are skipped when the export_corrections param is off.

Every step runs the project's own CLI in the project's venv (retraining/project.py): Airflow's pins
never meet the project's. The project folder, its python, the production revision and the releases
folder come from the run's params, else Airflow Variables, else environment variables; the API's
admin user from the Airflow connection `rakuten_api`. docs/airflow.md lists them all.
"""

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Connection, Param, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

from retraining import release, workspace
from retraining.project import PRODUCTION_REV, RELEASES_DIR, CommandFailed, Project, SettingSource, resolve_setting

log = logging.getLogger(__name__)

# Exit codes of the project's commands (rakuten_mm/monitoring/monitor.py, rakuten_mm/evaluation/gate.py).
MONITOR_NO_DRIFT, MONITOR_DRIFT = 0, 3
GATE_PASS, GATE_FAIL = 0, 1
DEFAULT_PRODUCTION_REV = "main"
DEFAULT_RELEASES_SUBDIR = "deployments/releases"
MLFLOW_URI = SettingSource("mlflow_tracking_uri", "rakuten_mlflow_tracking_uri", "MLFLOW_TRACKING_URI")
ROLLOUT = ["-m", "rakuten_mm.serving.rollout"]
REVIEW_DATABASE = SettingSource("review_database", "rakuten_review_database", "RAKUTEN_REVIEW_DATABASE")
# One folder, rewritten by every run with every decision so far (the latest decision per product wins):
# an export that did not change leaves its DVC hash, and so the import stage, as they were.
CORRECTIONS_FOLDER = "corrections/review"
# Read when the file is parsed: a schedule cannot depend on a run's params. "none": manual runs only.
SCHEDULE = os.environ.get("RAKUTEN_RETRAIN_SCHEDULE", "@daily")
# Every task of a run must run where the checkout is: with several Celery workers, give the
# tasks a queue that only the worker holding the checkout listens to.
TASK_DEFAULTS = {"retries": int(os.environ.get("RAKUTEN_RETRAIN_RETRIES", "2")),
                 "retry_delay": timedelta(seconds=float(os.environ.get("RAKUTEN_RETRAIN_RETRY_DELAY_S", "120"))),
                 "queue": os.environ.get("RAKUTEN_RETRAIN_QUEUE", "default")}

PARAMS = {
    "project_dir": Param("", type="string", description="Project checkout to retrain in (else Variable "
                                                         "rakuten_project_dir, env RAKUTEN_PROJECT_DIR)"),
    "python": Param("", type="string", description="The project's python (default: <project_dir>/.venv/bin/python)"),
    "production_rev": Param("", type="string", description="Git revision holding the production model's "
                                                            "metrics (else Variable/env; default main)"),
    "require_drift": Param(True, type="boolean", description="Retrain only when the monitor flags drift"),
    "monitor_args": Param([], type="array", description='Extra arguments of the monitor, e.g. ["--last-days", "7"]'),
    "export_corrections": Param(True, type="boolean", description="Export the reviewers' decisions and train on "
                                                                  "them (import.corrections)"),
    "review_database": Param("", type="string", description="The API's review database (else Variable "
                                                             "rakuten_review_database, env RAKUTEN_REVIEW_DATABASE; "
                                                             "default: the export command's own)"),
    "register_model": Param(True, type="boolean", description="Register the new model in MLflow"),
    "model_name": Param("rakuten-mm", type="string", description="MLflow registered model name"),
    "releases_dir": Param("", type="string", description="Where passed models are copied for serving "
                                                          "(default: <project_dir>/deployments/releases)"),
    "candidate_share": Param(0.1, type="number", minimum=0, maximum=1,
                             description="Share of products the new model serves as a candidate"),
    "promote": Param(True, type="boolean", description="Promote the candidate to current at once "
                                                       "(off: leave an A/B test running)"),
    "api_conn_id": Param("rakuten_api", type="string", description="Airflow connection of the API's admin user "
                                                                  "(http://admin:password@host:port)"),
}


def run_params() -> dict:
    """The params of the running DAG run."""
    return dict(get_current_context()["params"])


def current_project() -> Project:
    """The project checkout this run works on."""
    return Project.from_params(run_params())


def api_environment(conn_id: str) -> dict[str, str]:
    """The rollout command's API URL and admin user from an Airflow connection; none when it is not defined."""
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        # The rollout file alone still works: the API's workers notice it within seconds.
        log.warning("no Airflow connection %r: the rollout file is changed but the API is not asked to reload",
                    conn_id)
        return {}
    return release.rollout_environment(conn.conn_type, conn.host, conn.port, conn.schema, conn.login, conn.password)


@task(**TASK_DEFAULTS)
def snapshot_workspace() -> str:
    """Record the checkout's state (dvc.lock, metrics) to put back if the run fails."""
    sha = workspace.snapshot_workspace(current_project())
    log.info("workspace snapshot %s", sha)
    return sha


@task(execution_timeout=timedelta(hours=1), **TASK_DEFAULTS)
def dvc_pull() -> None:
    """Fetch the data and models of dvc.lock from the remote (the monitor's reference data among them)."""
    current_project().dvc("pull")


@task.short_circuit(execution_timeout=timedelta(minutes=30), **TASK_DEFAULTS)
def check_drift() -> bool:
    """Go on when the monitor flags drift (exit 3) or drift is not required; skip the rest otherwise."""
    params = run_params()
    if not params["require_drift"]:
        log.info("require_drift is off: retraining without a drift check")
        return True
    args = ["-m", "rakuten_mm.monitoring.monitor", "--fail-on-drift", *params["monitor_args"]]
    code = current_project().run(args, ok_codes=(MONITOR_NO_DRIFT, MONITOR_DRIFT))
    log.info("drift detected: retraining" if code == MONITOR_DRIFT else "no drift: nothing to retrain")
    return code == MONITOR_DRIFT


@task(execution_timeout=timedelta(minutes=30), **TASK_DEFAULTS)
def export_corrections() -> str:
    """Export the recorded review decisions into the corrections folder; its path in the checkout."""
    params = run_params()
    if not params["export_corrections"]:
        raise AirflowSkipException("export_corrections is off: training on the data as it is")
    database = resolve_setting(params, REVIEW_DATABASE)
    current_project().run(["-m", "rakuten_mm.serving.review", "export", "--out", CORRECTIONS_FOLDER,
                           *(["--database", database] if database else [])])
    return CORRECTIONS_FOLDER


@task(execution_timeout=timedelta(minutes=30), **TASK_DEFAULTS)
def track_corrections(folder: str) -> None:
    """`dvc add` the exported folder and list it in params.yaml import.corrections (nothing when it is empty)."""
    current_project().run(["-m", "rakuten_mm.data.corrections", "track", folder])


# Runs after a skipped export too (export_corrections off); the drift check's short circuit still skips it.
@task(execution_timeout=timedelta(hours=6), trigger_rule=TriggerRule.NONE_FAILED, **TASK_DEFAULTS)
def dvc_repro() -> None:
    """Rerun the pipeline stages whose data, code or params changed."""
    current_project().dvc("repro")


@task(execution_timeout=timedelta(minutes=10), **TASK_DEFAULTS)
def quality_gate() -> None:
    """Compare the new metrics with the production revision's; a drop beyond tolerance stops the run."""
    rev = resolve_setting(run_params(), PRODUCTION_REV) or DEFAULT_PRODUCTION_REV
    code = current_project().run(["-m", "rakuten_mm.evaluation.gate", "--rev", rev], ok_codes=(GATE_PASS, GATE_FAIL))
    if code == GATE_FAIL:
        # A verdict, not an outage: no retry can change it.
        raise AirflowFailException(f"quality gate failed against {rev}: the new model is not rolled out")


@task(execution_timeout=timedelta(hours=1), **TASK_DEFAULTS)
def dvc_push() -> None:
    """Store the new data, models and run cache on the remote."""
    current_project().dvc("push", "--run-cache")


@task(execution_timeout=timedelta(minutes=30), **TASK_DEFAULTS)
def register_model() -> None:
    """Register the new model in MLflow (skipped when the register_model param is off)."""
    params = run_params()
    if not params["register_model"]:
        raise AirflowSkipException("register_model is off")
    tracking_uri = resolve_setting(params, MLFLOW_URI)
    current_project().run(["-m", "rakuten_mm.tracking.register", "--model-name", params["model_name"]],
                          extra_env={"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else None)


@task(execution_timeout=timedelta(minutes=30), trigger_rule=TriggerRule.NONE_FAILED, **TASK_DEFAULTS)
def publish_release() -> str:
    """Copy the passed models (with dvc.lock and metrics) to a release folder nobody rewrites; its models path."""
    project, params = current_project(), run_params()
    releases = resolve_setting(params, RELEASES_DIR) or str(project.directory / DEFAULT_RELEASES_SUBDIR)
    models = release.publish_release(project.directory, Path(releases).expanduser().resolve(),
                                     release.release_name(get_current_context()["run_id"]))
    log.info("release published: %s", models)
    return str(models)


@task(execution_timeout=timedelta(minutes=15), **TASK_DEFAULTS)
def set_candidate(models: str) -> None:
    """Serve the release to candidate_share of products (rollout set-candidate) and ask the API to reload."""
    params = run_params()
    args = [*ROLLOUT, "set-candidate", models, "--share", str(params["candidate_share"])]
    try:
        current_project().run(args, extra_env=api_environment(params["api_conn_id"]))
    except CommandFailed as error:
        if any(message in line for line in error.tail for message in release.SAME_MODELS_MESSAGES):
            # Also what happens when the API serves this checkout's models/: point it at a release instead.
            raise AirflowSkipException("the retrained models are the current ones (is the API serving the "
                                       "checkout's own models/? see docs/airflow.md): nothing to roll out") from error
        raise


@task(execution_timeout=timedelta(minutes=15), **TASK_DEFAULTS)
def promote_candidate() -> None:
    """Make the candidate the current model (rollout promote; the old one stays as `previous` for rollback)."""
    params = run_params()
    if not params["promote"]:
        raise AirflowSkipException("promote is off: the candidate serves candidate_share until `make promote`")
    current_project().run([*ROLLOUT, "promote"], extra_env=api_environment(params["api_conn_id"]))


@task(execution_timeout=timedelta(minutes=30), trigger_rule=TriggerRule.ONE_FAILED, **TASK_DEFAULTS)
def restore_workspace() -> None:
    """After a failed pull, repro or gate: put back the models and dvc.lock the run started from."""
    sha = get_current_context()["ti"].xcom_pull(task_ids="snapshot_workspace")
    if not sha:
        raise AirflowSkipException("no snapshot was taken: nothing was changed")
    workspace.restore_workspace(current_project(), sha)
    log.info("workspace restored to snapshot %s", sha)


@dag(
    dag_id="rakuten_retrain",
    schedule=None if SCHEDULE.lower() == "none" else SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Runs share one checkout: never two at once.
    max_active_runs=1,
    params=PARAMS,
    tags=["rakuten", "retraining", "dvc"],
    doc_md=__doc__,
)
def rakuten_retrain():
    """The task graph."""
    pulled, reproduced, gated = dvc_pull(), dvc_repro(), quality_gate()
    exported = export_corrections()
    tracked = track_corrections(exported)
    snapshot_workspace() >> pulled >> check_drift() >> exported
    tracked >> reproduced >> gated
    published = publish_release()
    gated >> dvc_push() >> register_model() >> published
    set_candidate(published) >> promote_candidate()
    [pulled, exported, tracked, reproduced, gated] >> restore_workspace()


rakuten_retrain()
