"""Log the evaluated pipeline to MLflow and register its models/ as a new version of a named model.

    python -m rakuten_mm.tracking.register [--model-name rakuten-mm]

Run after `dvc repro` (the `evaluate` stage). The tracking server comes from MLFLOW_TRACKING_URI
(credentials from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD); without it, a SQLite
store in the repository: mlflow.db, artifacts under mlartifacts/.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import yaml
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException

import rakuten_mm
from rakuten_mm.categories import CODES
from rakuten_mm.serving.versions import MODEL_PARTS, model_version, read_model_outs
from rakuten_mm.tracking.nested import flatten
from rakuten_mm.tracking.pyfunc_model import MODELS_ARTIFACT, SIGNATURE

DEFAULT_MODEL_NAME = "rakuten-mm"
DEFAULT_EXPERIMENT = "rakuten-mm"
LOCAL_STORE = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
MODEL_ARTIFACT_PATH = "model"
# Models from code: MLflow stores and runs this file rather than a pickled ProductClassifierModel.
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")
# Distributions the pyfunc model imports when it loads and predicts: pinned to the versions
# installed here, so MLflow does not infer them (slow: it loads the model in a subprocess).
INFERENCE_DISTRIBUTIONS = ("mlflow", "tensorflow-cpu", "keras", "numpy", "scipy", "scikit-learn", "skops",
                           "pandas", "pillow", "tqdm")


class RegisterError(Exception):
    """The workspace lacks what registration needs (pipeline outputs, git)."""


@dataclass
class PipelineFiles:
    """Where the pipeline's inputs and outputs live, relative to the repository root."""

    repo: Path
    params: str = "params.yaml"
    metrics: str = "metrics/evaluate/metrics.json"
    confusion_matrix: str = "plots/evaluate/sklearn/confusion_matrix.json"
    models: str = "models"
    dvc_lock: str = "dvc.lock"

    def path(self, name: str) -> Path:
        """The absolute path of one of the files above, which must exist."""
        path = (self.repo / getattr(self, name)).resolve()
        if not path.exists():
            raise RegisterError(f"{path} not found: run `dvc repro` (up to evaluate) first")
        return path


def numeric_metrics(metrics: dict) -> dict[str, float]:
    """The numbers of a nested metrics dict, flattened (booleans and strings left out)."""
    return {name: float(value) for name, value in flatten(metrics).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def git_output(repo: Path, *args: str) -> str:
    """stdout of a git command in repo; RegisterError when git fails."""
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise RegisterError(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}")
    return result.stdout.strip()


def git_tags(repo: Path) -> dict[str, str]:
    """The commit of HEAD and whether tracked files differ from it (untracked files do not count)."""
    dirty = bool(git_output(repo, "status", "--porcelain", "--untracked-files=no"))
    return {"mlflow.source.git.commit": git_output(repo, "rev-parse", "HEAD"),
            "git.dirty": str(dirty).lower()}


def dvc_tags(dvc_lock: Path) -> dict[str, str]:
    """The dvc.lock md5 of each models/ out, and the version id the API reports for them."""
    outs = read_model_outs(dvc_lock)
    if not outs:
        raise RegisterError(f"{dvc_lock} records no models/ outs: run `dvc repro` first")
    return {**{f"dvc.md5.{path}": md5 for path, md5 in sorted(outs.items())},
            "model_version": model_version(outs)}


def confusion_figure(records: list[dict]) -> Figure:
    """The evaluate stage's confusion matrix (dvclive's actual/predicted rows) as a heatmap."""
    index = {str(code): i for i, code in enumerate(CODES)}
    counts = np.zeros((len(CODES), len(CODES)), dtype=np.int64)
    for record in records:
        counts[index[str(record["actual"])], index[str(record["predicted"])]] += 1
    figure = Figure(figsize=(9, 8), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(CODES)), [str(code) for code in CODES], rotation=90, fontsize=7)
    axes.set_yticks(range(len(CODES)), [str(code) for code in CODES], fontsize=7)
    axes.set(xlabel="Predicted prdtypecode", ylabel="True prdtypecode",
             title="Fusion confusion matrix (test split)")
    figure.colorbar(image, ax=axes)
    return figure


def pip_requirements() -> list[str]:
    """`name==version` of each inference distribution, as installed in this environment."""
    return [f"{name}=={metadata.version(name)}" for name in INFERENCE_DISTRIBUTIONS]


def tracking_store(repo: Path) -> tuple[str, str | None]:
    """The tracking URI, and where new experiments keep artifacts (None: the server decides)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None
    return f"sqlite:///{(repo / LOCAL_STORE).resolve()}", (repo / LOCAL_ARTIFACTS).resolve().as_uri()


def experiment_id(name: str, artifact_location: str | None) -> str:
    """The id of the named experiment, created (with that artifact location) if missing."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_location)


@dataclass
class RunContent:
    """Everything logged for one pipeline run, read before any run is created."""

    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    confusion_records: list[dict]
    files: PipelineFiles

    @property
    def run_name(self) -> str:
        """Short commit, a dirty marker and the models' version id."""
        dirty = "-dirty" if self.tags["git.dirty"] == "true" else ""
        return f"{self.tags['mlflow.source.git.commit'][:8]}{dirty}-{self.tags['model_version']}"


def read_run_content(files: PipelineFiles) -> RunContent:
    """Read metrics, the confusion matrix, params, DVC hashes and git state of the workspace."""
    # Pipeline outputs first: their absence is the likeliest mistake, and its message says what to run.
    metrics = numeric_metrics(json.loads(files.path("metrics").read_text(encoding="utf-8")))
    records = json.loads(files.path("confusion_matrix").read_text(encoding="utf-8"))
    tags = dvc_tags(files.path("dvc_lock"))
    params = yaml.safe_load(files.path("params").read_text(encoding="utf-8")) or {}
    return RunContent(tags={**git_tags(files.repo), **tags},
                      params={name: str(value) for name, value in flatten(params).items()},
                      metrics=metrics, confusion_records=records, files=files)


def served_models_copy(models: Path, destination: Path) -> Path:
    """A copy of the parts ProductClassifier loads (text, image, fusion) of a models/ folder."""
    # models/ may hold more (e.g. a feature extractor already inside the image model): not logged.
    for part in MODEL_PARTS:
        shutil.copytree(models / part, destination / part)
    return destination


def pyfunc_arguments(models: Path) -> dict:
    """The wrapper, a models folder, the package's code and the pinned requirements."""
    return dict(python_model=str(PYFUNC_ENTRY), artifacts={MODELS_ARTIFACT: str(models)},
                code_paths=[str(Path(rakuten_mm.__file__).parent)],
                pip_requirements=pip_requirements(), signature=SIGNATURE)


def log_and_register(arguments: dict, model_name: str):
    """mlflow.pyfunc.log_model with registration; RegisterError when the server lacks the endpoints."""
    try:
        return mlflow.pyfunc.log_model(name=MODEL_ARTIFACT_PATH, registered_model_name=model_name, **arguments)
    except MlflowException as error:
        # Servers older than MLflow 3 (DagsHub's hosted MLflow among them) answer 404 to the
        # logged-model endpoints, and some have no model registry at all.
        if "404" not in str(error):
            raise
        raise RegisterError(f"the tracking server lacks an endpoint ({str(error).splitlines()[0]}): "
                            "rerun with --no-register to log the model as run artifacts") from error


def log_model(models: Path, model_name: str | None):
    """Log the pyfunc model and register it under model_name; None: as plain run artifacts only."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # The signature is explicit; an input example would only make MLflow load TensorFlow models.
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        arguments = pyfunc_arguments(served_models_copy(models, Path(tmp) / MODELS_ARTIFACT))
        if model_name is not None:
            return log_and_register(arguments, model_name)
        # Needs no logged-model or registry API: for servers that predate MLflow 3 (e.g. DagsHub's).
        local = Path(tmp) / MODEL_ARTIFACT_PATH
        mlflow.pyfunc.save_model(local, **arguments)
        mlflow.log_artifacts(str(local), MODEL_ARTIFACT_PATH)
        return None


def log_run(content: RunContent, experiment: str, model_name: str | None) -> tuple[str, str | None]:
    """Log one run (params, metrics, plots, tags, model); register the model unless model_name is None."""
    uri, artifact_location = tracking_store(content.files.repo)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment_id(experiment, artifact_location),
                          run_name=content.run_name, tags=content.tags) as run:
        mlflow.log_params(content.params)
        mlflow.log_metrics(content.metrics)
        mlflow.log_artifact(str(content.files.path("confusion_matrix")), "plots")
        mlflow.log_figure(confusion_figure(content.confusion_records), "plots/confusion_matrix.png")
        mlflow.log_artifact(str(content.files.path("dvc_lock")), "dvc")
        info = log_model(content.files.path("models"), model_name)
    if info is None:
        return run.info.run_id, None
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in content.tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return run.info.run_id, version


def main(argv: list[str] | None = None) -> int:
    """CLI: log the workspace's evaluated pipeline and register a model version; 2 when impossible."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="registered model name")
    parser.add_argument("--experiment", default=os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT),
                        help="experiment name (default: MLFLOW_EXPERIMENT_NAME or rakuten-mm)")
    parser.add_argument("--no-register", action="store_true",
                        help="log the model as run artifacts only, for servers without a model registry")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository root (default: .)")
    args = parser.parse_args(argv)
    # A URI from the environment may carry credentials: name the variable instead of printing it.
    where = "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else tracking_store(args.repo)[0]
    try:
        content = read_run_content(PipelineFiles(args.repo))
        run_id, version = log_run(content, args.experiment, None if args.no_register else args.model_name)
    except RegisterError as error:
        print(f"register ERROR: {error}", file=sys.stderr)
        return 2
    if version is None:
        print(f"logged run {run_id} with its model at runs:/{run_id}/{MODEL_ARTIFACT_PATH} ({where})")
    else:
        print(f"registered models:/{args.model_name}/{version} from run {run_id} ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
