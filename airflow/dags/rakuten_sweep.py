"""Sweep DAG: one mapped task per parameter set of a sweep file, each a DVC experiment run in its own clone.

    plan_sweep -> run_experiment (mapped: .expand() over the parameter sets) -> report_sweep

plan_sweep fetches the checkout's git remote and resolves `rev` to a commit; every mapped task runs
`python -m rakuten_mm.tracking.sweep_worker` on that commit (a clean clone, `dvc exp run`, outputs
to the DVC remote, then the experiment's git ref to the git remote), so the workers may run on any
Celery worker that has the project's venv. report_sweep pulls the experiments' refs into the checkout
and writes sweeps/reports/<sweep>.md there, choosing the best on the validation metric.

Manual runs only (schedule None); the params say which sweep file, which revision, which checkout.
docs/airflow.md lists the settings.
"""

import json
import logging
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from retraining.project import Project

log = logging.getLogger(__name__)

# rakuten_mm.tracking.sweep_report's exit code: report written, some experiment missing.
REPORT_INCOMPLETE = 3
WORKER = ["-m", "rakuten_mm.tracking.sweep_worker"]
# Read when the file is parsed: how many experiments of one run train at once (on a LocalExecutor
# they share the Airflow machine's cores; with Celery, the workers' machines).
PARALLEL_EXPERIMENTS = int(os.environ.get("RAKUTEN_SWEEP_PARALLELISM", "2"))
TASK_DEFAULTS = {"retries": int(os.environ.get("RAKUTEN_SWEEP_RETRIES", "2")),
                 "retry_delay": timedelta(seconds=float(os.environ.get("RAKUTEN_SWEEP_RETRY_DELAY_S", "120")))}

PARAMS = {
    "sweep": Param("sweeps/text_and_fusion.yaml", type="string",
                   description="Sweep file, relative to the repository"),
    "rev": Param("HEAD", type="string", description="Git revision of the checkout to sweep, after fetching "
                                                    "git_remote (e.g. origin/main); resolved to one commit"),
    "git_remote": Param("origin", type="string", description="The checkout's git remote: workers clone it and "
                                                              "push their experiments to it"),
    "project_dir": Param("", type="string", description="Project checkout (else Variable rakuten_project_dir, "
                                                         "env RAKUTEN_PROJECT_DIR)"),
    "python": Param("", type="string", description="The project's python (default: <project_dir>/.venv/bin/python)"),
    "workdir": Param("", type="string", description="Parent folder of the workers' clones, kept afterwards "
                                                     "(default: a temporary folder per worker, removed)"),
    "metric": Param("", type="string", description="file:key to maximise (default: the validation "
                                                   "fusion weighted F1)"),
}


def run_params() -> dict:
    """The params of the running DAG run."""
    return dict(get_current_context()["params"])


def current_project() -> Project:
    """The project checkout this run plans and reports in."""
    return Project.from_params(run_params())


@task(execution_timeout=timedelta(minutes=10), **TASK_DEFAULTS)
def plan_sweep() -> list[dict]:
    """Fetch the git remote, resolve rev to a commit; the sweep's experiments at that commit (index, name, ...)."""
    params, project = run_params(), current_project()
    with tempfile.TemporaryDirectory(prefix="sweep-plan-") as folder:
        output = Path(folder) / "plan.json"
        project.run(["-m", "rakuten_mm.tracking.sweeps", "plan", "--sweep", params["sweep"], "--rev", params["rev"],
                     "--fetch", params["git_remote"], "--output", str(output)])
        plan = json.loads(output.read_text())
    log.info("sweep %s on %s: %d experiments", plan["sweep"], plan["commit"], len(plan["experiments"]))
    # One element per mapped task, each with what that task needs.
    return [{**experiment, "sweep": plan["sweep"], "commit": plan["commit"]} for experiment in plan["experiments"]]


@task(execution_timeout=timedelta(hours=12), max_active_tis_per_dagrun=PARALLEL_EXPERIMENTS,
      map_index_template="{{ task.op_kwargs['experiment']['name'] }}", **TASK_DEFAULTS)
def run_experiment(experiment: dict) -> str:
    """One parameter set: the sweep worker on the planned commit; the experiment's name."""
    params, project = run_params(), current_project()
    # The URL may carry a token: the worker gets it from its environment, never on a logged command line.
    repo_url = project.git("remote", "get-url", params["git_remote"])
    args = [*WORKER, "--sweep", params["sweep"], "--index", str(experiment["index"]),
            "--rev", experiment["commit"]]
    if params["workdir"]:
        args += ["--workdir", params["workdir"]]
    project.run(args, extra_env={"RAKUTEN_SWEEP_REPO": repo_url})
    return experiment["name"]


@task(execution_timeout=timedelta(minutes=30), trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
      **TASK_DEFAULTS)
def report_sweep(planned: list[dict]) -> str:
    """Pull the experiments into the checkout, write the report; fail when some experiment is missing."""
    params, project = run_params(), current_project()
    sweep, commit = planned[0]["sweep"], planned[0]["commit"]
    args = ["-m", "rakuten_mm.tracking.sweep_report", "--sweep", params["sweep"], "--rev", commit,
            "--git-remote", params["git_remote"], "--require-all"]
    if params["metric"]:
        args += ["--metric", params["metric"]]
    code = project.run(args, ok_codes=(0, REPORT_INCOMPLETE))
    report = project.directory / "sweeps" / "reports" / f"{sweep}.md"
    if code == REPORT_INCOMPLETE:
        # The report is written; the run still fails so that the missing experiments are seen.
        raise AirflowFailException(f"some experiments of {sweep} are missing: see {report} and the failed tasks")
    return str(report)


@dag(
    dag_id="rakuten_sweep",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["rakuten", "sweep", "dvc"],
    doc_md=__doc__,
)
def rakuten_sweep():
    """The task graph."""
    planned = plan_sweep()
    run_experiment.expand(experiment=planned) >> report_sweep(planned)


rakuten_sweep()
