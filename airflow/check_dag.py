"""Load the DAG folder and describe it, or run one DAG in-process with dag.test(); JSON to a file.

Run with the Airflow venv's python (AIRFLOW_HOME and AIRFLOW__CORE__DAGS_FOLDER set, database migrated):
    python airflow/check_dag.py describe --output dags.json
    python airflow/check_dag.py run --conf '{"require_drift": false}' --output run.json
tests/test_airflow_dag.py calls it; it also checks a DAG change by hand without a scheduler.
"""

import argparse
import json
import sys
from pathlib import Path

DEFAULT_DAG_ID = "rakuten_retrain"
DEFAULT_DAGS_FOLDER = Path(__file__).resolve().parent / "dags"


def load_dag_bag(dags_folder: Path):
    """The DAG folder parsed as Airflow's DAG processor does (the folder is importable, as a bundle)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=dags_folder, bundle_path=dags_folder, bundle_name="dags-folder")


def describe(dags_folder: Path) -> dict:
    """Import errors and, per DAG, each task's downstream tasks, trigger rule, retries and whether it is mapped."""
    bag = load_dag_bag(dags_folder)
    dags = {
        dag_id: {
            "schedule": dag.schedule if isinstance(dag.schedule, str | None) else str(dag.schedule),
            "max_active_runs": dag.max_active_runs,
            "params": sorted(dag.params.keys()),
            "tasks": {task.task_id: {"downstream": sorted(task.downstream_task_ids),
                                     "trigger_rule": str(task.trigger_rule.value),
                                     "retries": task.retries,
                                     "mapped": bool(getattr(task, "is_mapped", False))}
                      for task in dag.tasks},
        }
        for dag_id, dag in bag.dags.items()
    }
    return {"import_errors": bag.import_errors, "dags": dags}


def task_key(task_id: str, map_index: int) -> str:
    """A task instance's key in the report: its task id, with `[i]` for mapped task instance i."""
    return task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"


def run_dag(dags_folder: Path, dag_id: str, conf: dict) -> dict:
    """Run the DAG once with dag.test(run_conf=conf); the run's state, each task's state and XCom result."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = load_dag_bag(dags_folder).dags[dag_id]
    run = dag.test(run_conf=conf)
    with create_session() as session:
        instances = run.get_task_instances(session=session)
        # States are plain strings or str enums depending on the code path: keep their values.
        states = {task_key(ti.task_id, ti.map_index): str(getattr(ti.state, "value", ti.state)) if ti.state else None
                  for ti in instances}
        query = XComModel.get_many(run_id=run.run_id, dag_ids=dag_id, key="return_value")
        results = {task_key(row.task_id, row.map_index): XComModel.deserialize_value(row)
                   for row in session.scalars(query)}
    return {"run_id": run.run_id, "state": str(getattr(run.state, "value", run.state)), "tasks": states,
            "xcom": results}


def main(argv: list[str] | None = None) -> int:
    """CLI: describe the folder or run a DAG; the JSON report goes to --output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("describe", "run"))
    parser.add_argument("--dags-folder", type=Path, default=DEFAULT_DAGS_FOLDER)
    parser.add_argument("--dag-id", default=DEFAULT_DAG_ID)
    parser.add_argument("--conf", default="{}", help="run: the DAG run's params as JSON")
    parser.add_argument("--output", type=Path, required=True, help="where the JSON report is written")
    args = parser.parse_args(argv)
    folder = args.dags_folder.resolve()
    report = describe(folder) if args.command == "describe" else run_dag(folder, args.dag_id, json.loads(args.conf))
    args.output.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
