"""Sweeps across machines for real, on 127.0.0.1: a bare git repository is the git remote, moto the DVC remote.

First, without running anything, the sweep DAG loads with its task mapped over the parameter sets.

The sweep file has two parameter sets (the TF-IDF + SVM baseline's C, 0.05 or 5, where the tiny
pipeline's is 0.5): each refits the baseline and reruns what depends on it, up to evaluate. In order, sharing one module:
1. two sweep workers run at once as processes, each in its own clone; the second is killed (SIGKILL
   to its whole process group) as it starts pushing its outputs: the git remote gets the first
   experiment only, and a clone's `dvc exp show` does not list the killed one;
2. the sweep DAG runs through dag.test(): the mapped task of index 0 finds its experiment already on
   the git remote, the one of index 1 reruns the killed index over its leftover clone, the report
   task writes sweeps/reports/baseline_c.md in the DAG's checkout;
3. a third clone sees both experiments with their metrics in `dvc exp show`, picks the best on the
   validation score, applies it, pulls its models and predicts with ProductClassifier.
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline_utils import GIT_IDENTITY, copy_checkout, run
from rakuten_mm.categories import CODES
from rakuten_mm.tracking.sweep_report import split_metric
from rakuten_mm.tracking.sweeps import DEFAULT_METRIC
from server_utils import free_port
from test_airflow_dag import airflow_environment, airflow_home, check_dag, migrated_airflow_home  # noqa: F401
from test_remote import DUMMY_KEY, moto_server, point_remote_at, remote_bucket

REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILE = "sweeps/baseline_c.yaml"
SWEEP_GRID = "train_baseline.C: [0.05, 5.0]\n"
NAMES = ["baseline_c-0", "baseline_c-1"]
BASELINE_C = {"baseline_c-0": 0.05, "baseline_c-1": 5.0}
METRIC_KEY = split_metric(DEFAULT_METRIC)[1]
KILL_AT = "sweep-worker: pushing the outputs of baseline_c-1"
WORKER_TIMEOUT_S = 600


def test_sweep_dag_maps_one_task_per_parameter_set(airflow_home, tmp_path):
    report = check_dag(airflow_environment(airflow_home), tmp_path, "describe")
    assert report["import_errors"] == {}
    dag = report["dags"]["rakuten_sweep"]
    assert {task: (spec["downstream"], spec["mapped"]) for task, spec in dag["tasks"].items()} == {
        "plan_sweep": (["report_sweep", "run_experiment"], False),
        "run_experiment": (["report_sweep"], True),
        "report_sweep": ([], False),
    }
    # The report waits for every worker, failed ones included, and needs one that succeeded.
    assert dag["tasks"]["report_sweep"]["trigger_rule"] == "all_done_min_one_success"
    assert all(spec["retries"] >= 1 for spec in dag["tasks"].values()) and dag["schedule"] is None
    assert {"sweep", "rev", "git_remote", "project_dir", "python", "workdir", "metric"} == set(dag["params"])


def git(repo: Path, *args: str) -> str:
    """A git command's output."""
    return run(["git", *args], repo).stdout.strip()


def remote_experiments(origin: Path) -> list[str]:
    """Names of the experiments whose git refs the git remote holds."""
    refs = git(origin, "for-each-ref", "--format=%(refname)", "refs/exps/")
    return sorted(ref.rsplit("/", 1)[1] for ref in refs.splitlines())


@pytest.fixture(scope="module")
def origin(tiny_pipeline, tmp_path_factory) -> dict:
    """The tiny pipeline's results and a sweep file committed and pushed to a bare repository (the git remote)."""
    tmp = tmp_path_factory.mktemp("sweep")
    source = tmp / "source"
    copy_checkout(tiny_pipeline[0], source)
    (source / SWEEP_FILE).write_text(SWEEP_GRID)
    git(source, "add", "-A")
    git(source, "commit", "-qm", "tiny results and a sweep")
    bare = tmp / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], tmp)
    git(source, "push", "-q", str(bare), "HEAD:refs/heads/main")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/main")
    return {"tmp": tmp, "source": source, "bare": bare, "commit": git(source, "rev-parse", "HEAD")}


@pytest.fixture(scope="module")
def s3(origin) -> str:
    """A moto S3 server holding the baseline's outputs (pushed from the source checkout); its URL."""
    with moto_server(free_port(), remote_bucket(origin["source"])) as url:
        point_remote_at(origin["source"], url)
        run([sys.executable, "-m", "dvc", "push", "--run-cache", "-q"], origin["source"])
        yield url


def worker_environment(url: str) -> dict:
    """A machine with the DVC remote's keys and endpoint in its environment and no git identity of its own."""
    dropped = {"AWS_PROFILE", "AWS_SESSION_TOKEN", *GIT_IDENTITY}
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    return {**env, "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY, "DVC_S3_ENDPOINT_URL": url,
            "AWS_MAX_ATTEMPTS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}


def start_worker(origin: dict, url: str, index: int, log: Path) -> subprocess.Popen:
    """A sweep worker process, in a session of its own (killed as a whole, like a pod), output to log."""
    command = [sys.executable, "-m", "rakuten_mm.tracking.sweep_worker", "--sweep", SWEEP_FILE, "--index", str(index),
               "--repo", str(origin["bare"]), "--rev", origin["commit"], "--workdir", str(origin["tmp"] / "work")]
    with log.open("w") as sink:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=worker_environment(url), stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill_when_logged(process: subprocess.Popen, log: Path, line: str, timeout_s: float) -> None:
    """SIGKILL the process group as soon as line appears in log; fail if the process ends first."""
    deadline = time.monotonic() + timeout_s
    while line not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the worker never logged {line!r} (exit {process.returncode}):\n{log.read_text()[-4000:]}")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def experiment_rows(clone: Path) -> dict[str, dict]:
    """`dvc exp show --csv` of a clone after `dvc exp pull`: its experiments' rows by name."""
    run([sys.executable, "-m", "dvc", "exp", "pull", "--no-cache", "--force", "origin"], clone)
    table = run([sys.executable, "-m", "dvc", "exp", "show", "--csv"], clone).stdout
    return {row["Experiment"]: row for row in csv.DictReader(io.StringIO(table)) if row.get("Experiment")}


@pytest.fixture(scope="module")
def third_clone(origin, s3) -> Path:
    """Someone else's clone of the git remote, with the DVC remote configured."""
    clone = origin["tmp"] / "third"
    run(["git", "clone", "-q", str(origin["bare"]), str(clone)], origin["tmp"])
    point_remote_at(clone, s3)
    return clone


@pytest.fixture(scope="module")
def concurrent_workers(origin, s3) -> dict:
    """Workers 0 and 1 started together; worker 1 killed as it starts pushing. Their logs and exit codes."""
    logs = {index: origin["tmp"] / f"worker-{index}.log" for index in (0, 1)}
    workers = {index: start_worker(origin, s3, index, logs[index]) for index in (0, 1)}
    try:
        kill_when_logged(workers[1], logs[1], KILL_AT, WORKER_TIMEOUT_S)
        workers[0].wait(timeout=WORKER_TIMEOUT_S)
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    return {"logs": {index: log.read_text() for index, log in logs.items()},
            "codes": {index: worker.returncode for index, worker in workers.items()}}


@pytest.mark.slow
def test_concurrent_workers_push_complete_experiments_only(concurrent_workers, origin, third_clone):
    logs, codes = concurrent_workers["logs"], concurrent_workers["codes"]
    assert codes == {0: 0, 1: -signal.SIGKILL}, logs[0][-4000:]
    # Both really trained: each refitted the baseline with its own C and reran the evaluation.
    for index in (0, 1):
        assert "Running stage 'train_baseline'" in logs[index], logs[index][-4000:]
        assert "Running stage 'evaluate'" in logs[index], logs[index][-4000:]
    assert "Running stage 'train_text'" not in logs[0] + logs[1]
    assert f"baseline_c-0 on {origin['commit'][:7]}: train_baseline.C=0.05" in logs[0]
    assert "baseline_c-1 on" in logs[1] and "train_baseline.C=5.0" in logs[1]
    assert "sweep-worker: done: baseline_c-0" in logs[0]
    # The killed worker's experiment is nowhere: no git ref, so no clone lists it.
    assert remote_experiments(origin["bare"]) == ["baseline_c-0"]
    rows = experiment_rows(third_clone)
    assert "baseline_c-0" in rows and "baseline_c-1" not in rows
    assert float(rows["baseline_c-0"]["train_baseline.C"]) == 0.05 and float(rows["baseline_c-0"][METRIC_KEY]) > 0


@pytest.fixture(scope="module")
def dag_run(concurrent_workers, migrated_airflow_home, origin, s3) -> dict:
    """One dag.test() run of the sweep DAG on a checkout of the git remote (the Airflow machine's)."""
    project = origin["tmp"] / "airflow-checkout"
    run(["git", "clone", "-q", str(origin["bare"]), str(project)], origin["tmp"])
    env = airflow_environment(migrated_airflow_home, {
        "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY, "DVC_S3_ENDPOINT_URL": s3,
        "AWS_MAX_ATTEMPTS": "1", "RAKUTEN_SWEEP_RETRIES": "0"})
    for name in GIT_IDENTITY:
        env.pop(name)
    conf = {"sweep": SWEEP_FILE, "rev": "origin/main", "project_dir": str(project), "python": sys.executable,
            "workdir": str(origin["tmp"] / "work")}
    report = check_dag(env, origin["tmp"], "run", "--dag-id", "rakuten_sweep", "--conf", json.dumps(conf))
    return {**report, "project": project}


@pytest.mark.slow
def test_dag_reruns_the_killed_index_only_and_reports(dag_run, origin):
    tasks = dag_run["tasks"]
    assert dag_run["state"] == "success", dag_run["log"][-6000:]
    assert tasks == {"plan_sweep": "success", "run_experiment[0]": "success", "run_experiment[1]": "success",
                     "report_sweep": "success"}, tasks
    assert [item["commit"] for item in dag_run["xcom"]["plan_sweep"]] == [origin["commit"]] * 2
    assert "sweep-worker: baseline_c-0 on" in dag_run["log"] and "already on origin: nothing to do" in dag_run["log"]
    assert dag_run["log"].count("Running stage 'train_baseline'") == 1
    assert "sweep-worker: done: baseline_c-1" in dag_run["log"]
    assert remote_experiments(origin["bare"]) == NAMES
    report = Path(dag_run["xcom"]["report_sweep"])
    assert report == dag_run["project"] / "sweeps" / "reports" / "baseline_c.md"
    assert all(f"| {name}" in report.read_text() or f"| **{name}**" in report.read_text() for name in NAMES)


def product_photo(seed: int) -> bytes:
    """A JPEG of a coloured disc on white, like the synthetic products."""
    rng = np.random.default_rng(seed)
    pixels = np.full((200, 200, 3), 255, dtype=np.uint8)
    yy, xx = np.mgrid[:200, :200]
    pixels[(yy - 100) ** 2 + (xx - 100) ** 2 < 60 ** 2] = rng.integers(0, 200, size=3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_third_clone_applies_and_serves_the_best_experiment(dag_run, third_clone):
    from rakuten_mm.models.predictor import ProductClassifier

    rows = experiment_rows(third_clone)
    scores = {name: float(rows[name][METRIC_KEY]) for name in NAMES}
    assert {name: float(rows[name]["train_baseline.C"]) for name in NAMES} == BASELINE_C
    best = max(NAMES, key=scores.get)  # of equal scores, the lower index
    # The DAG's report chose the same experiment from the same scores.
    assert f"Best: **{best}**" in Path(dag_run["xcom"]["report_sweep"]).read_text()
    # As the report says: the best's ref and outputs, then apply (it checks the outputs out of the cache).
    run([sys.executable, "-m", "dvc", "exp", "pull", "--force", "origin", best], third_clone)
    run([sys.executable, "-m", "dvc", "exp", "apply", best], third_clone)
    run([sys.executable, "-m", "dvc", "pull"], third_clone)
    # The workspace is the best experiment's: its params and dvc.lock, and outputs matching that lock.
    params = yaml.safe_load((third_clone / "params.yaml").read_text())
    assert params["train_baseline"]["C"] == BASELINE_C[best]
    assert (third_clone / "dvc.lock").read_text().strip() == git(third_clone, "show", f"{rows[best]['rev']}:dvc.lock")
    assert "up to date" in run([sys.executable, "-m", "dvc", "status"], third_clone).stdout
    classifier = ProductClassifier(third_clone / "models")
    products = [classifier.prepare_product("Piscine tubulaire ronde avec pompe", "Filtration incluse",
                                           product_photo(1)),
                classifier.prepare_product("Harry Potter et la coupe de feu", "", None)]
    titles, descriptions, images, has_image = zip(*products)
    probabilities = classifier.predict_proba(list(titles), list(descriptions), np.stack(images), list(has_image))
    fused = probabilities["fused"]
    assert fused.shape == (2, len(CODES)) and np.allclose(fused.sum(axis=1), 1, atol=1e-4)
    assert not np.isnan(fused).any()
