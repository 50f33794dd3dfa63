"""MLflow registration of the tiny pipeline's run, against a real `mlflow server` on 127.0.0.1.

The register command runs as a subprocess, as users run it; the checks read the server through
its REST API; the registered model is loaded and run in another subprocess, outside the repository.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from api_support import product_jpeg, shared_classifier
from server_utils import background, free_port, wait_for_http
from rakuten_mm.categories import CODES
from rakuten_mm.tracking.register import git_tags, main

STARTUP_TIMEOUT_S = 120
COMMAND_TIMEOUT_S = 300
MODEL_NAME = "rakuten-mm-test"
# Loads the registered version (argv: model URI, input pickle, output JSON) with nothing of the repo on sys.path.
LOAD_AND_PREDICT = """
import sys, mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_pickle(sys.argv[2])).to_json(sys.argv[3], orient="records")
"""


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real tracking server with a temporary SQLite store and proxied artifacts; yields its URL."""
    tmp = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    # The job runner (huey consumers for GenAI jobs) is not needed and costs processes and seconds.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
               "--serve-artifacts", "--artifacts-destination", str(tmp / "artifacts")]
    # mlflow server forks its uvicorn worker: stop the whole process group.
    with background(command, tmp / "server.out", group=True, cwd=tmp, env=env) as server:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/health", server, tmp / "server.out", STARTUP_TIMEOUT_S)
        yield base_url


def register(repo: Path, tracking_uri: str) -> subprocess.CompletedProcess:
    """`python -m rakuten_mm.tracking.register` in the repository, as a user runs it."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    result = subprocess.run([sys.executable, "-m", "rakuten_mm.tracking.register", "--model-name", MODEL_NAME],
                            cwd=repo, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def rest(base_url: str, endpoint: str, **query) -> dict:
    """GET one MLflow REST endpoint (/api/2.0/mlflow/<endpoint>) and return its JSON."""
    response = httpx.get(f"{base_url}/api/2.0/mlflow/{endpoint}", params=query, timeout=30)
    assert response.status_code == 200, f"{endpoint}: {response.status_code} {response.text}"
    return response.json()


def as_dict(entries: list[dict]) -> dict:
    """MLflow's [{"key": k, "value": v}, ...] lists as {k: v}."""
    return {entry["key"]: entry["value"] for entry in entries}


@pytest.fixture(scope="module")
def first_version(tiny_pipeline, mlflow_server) -> dict:
    """Register the tiny pipeline once; the server's view of version 1 of the model."""
    repo, _ = tiny_pipeline
    result = register(repo, mlflow_server)
    assert f"registered models:/{MODEL_NAME}/1 from run" in result.stdout
    return rest(mlflow_server, "model-versions/get", name=MODEL_NAME, version="1")["model_version"]


def test_run_holds_the_pipeline_metrics_params_and_provenance(tiny_pipeline, mlflow_server, first_version):
    repo, _ = tiny_pipeline
    run = rest(mlflow_server, "runs/get", run_id=first_version["run_id"])["run"]
    metrics = {entry["key"]: entry["value"] for entry in run["data"]["metrics"]}
    expected = json.loads((repo / "metrics/evaluate/metrics.json").read_text())
    for split in ("val", "test"):
        for model in ("text", "image", "fusion", "baseline"):
            key = f"{split}.{model}.f1_weighted"
            assert metrics[key] == pytest.approx(expected[split][model]["f1_weighted"], abs=1e-12), key
    params = as_dict(run["data"]["params"])
    tiny = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train_text.model"] == tiny["train_text"]["model"]
    assert params["import.sample.n_labelled"] == str(tiny["import"]["sample"]["n_labelled"])
    tags = as_dict(run["data"]["tags"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    assert tags["mlflow.source.git.commit"] == head.stdout.strip()
    assert tags["git.dirty"] == "false"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage, out in (("train_text", "models/text"), ("train_image", "models/image"),
                       ("train_fusion", "models/fusion")):
        md5 = next(o["md5"] for o in lock[stage]["outs"] if o["path"] == out)
        assert tags[f"dvc.md5.{out}"] == md5
        assert as_dict(first_version["tags"])[f"dvc.md5.{out}"] == md5
    plots = rest(mlflow_server, "artifacts/list", run_id=first_version["run_id"], path="plots")["files"]
    assert {"plots/confusion_matrix.png", "plots/confusion_matrix.json"} <= {f["path"] for f in plots}


def products_table(tmp_path: Path) -> pd.DataFrame:
    """Raw products: image as bytes, as a file path, or none; with and without a description."""
    (tmp_path / "photo.png").write_bytes(product_jpeg(seed=2, fmt="PNG"))
    return pd.DataFrame({
        "designation": ["Piscine tubulaire ronde 3,05 m avec pompe", "Harry Potter et le prisonnier d'Azkaban",
                        "Manette sans fil pour console", "Lot de 3 paires de chaussettes bébé"],
        "description": ["Filtration incluse, <b>bâche</b> offerte", None, "Compatible PC &amp; console", ""],
        "image": [product_jpeg(seed=1), None, None, None],
        "image_path": [None, None, str(tmp_path / "photo.png"), None],
    })


def reference_predictions(models_dir: Path, products: pd.DataFrame) -> tuple[list[int], np.ndarray]:
    """Codes and top-1 probabilities from the package's ProductClassifier, as the API computes them."""
    classifier = shared_classifier(models_dir)
    # pandas stores the missing paths as NaN.
    images = [image if image is not None else (Path(path).read_bytes() if isinstance(path, str) else None)
              for image, path in zip(products["image"], products["image_path"], strict=True)]
    prepared = [classifier.prepare_product(title, description, image)
                for title, description, image in zip(products["designation"], products["description"], images,
                                                     strict=True)]
    titles, descriptions, pixels, has_image = zip(*prepared, strict=True)
    fused = classifier.predict_proba(titles, descriptions, np.stack(pixels), np.array(has_image))["fused"]
    return [CODES[i] for i in fused.argmax(axis=1)], fused.max(axis=1)


def test_registered_version_predicts_like_product_classifier(tiny_pipeline, mlflow_server, first_version, tmp_path):
    repo, _ = tiny_pipeline
    products = products_table(tmp_path)
    products.to_pickle(tmp_path / "products.pkl")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # From tmp_path with no PYTHONPATH: the package can only come from the model's code_paths.
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, f"models:/{MODEL_NAME}/1", "products.pkl", "predicted.json"],
        cwd=tmp_path, env={**env, "MLFLOW_TRACKING_URI": mlflow_server}, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]
    predicted = json.loads((tmp_path / "predicted.json").read_text())
    codes, probabilities = reference_predictions(repo / "models", products)
    assert [row["prdtypecode"] for row in predicted] == codes
    assert [row["probability"] for row in predicted] == pytest.approx(probabilities.tolist(), abs=1e-5)


def test_registering_again_makes_version_2(tiny_pipeline, mlflow_server, first_version):
    repo, _ = tiny_pipeline
    result = register(repo, mlflow_server)
    assert f"registered models:/{MODEL_NAME}/2 from run" in result.stdout
    second = rest(mlflow_server, "model-versions/get", name=MODEL_NAME, version="2")["model_version"]
    assert second["run_id"] != first_version["run_id"]
    assert as_dict(second["tags"])["model_version"] == as_dict(first_version["tags"])["model_version"]
    versions = rest(mlflow_server, "model-versions/search", filter=f"name='{MODEL_NAME}'")["model_versions"]
    assert sorted(v["version"] for v in versions) == ["1", "2"]


def test_git_dirty_counts_tracked_changes_only(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "tracked.txt").write_text("one\n")
    subprocess.run(["git", "add", "tracked.txt"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "c"],
                   cwd=tmp_path, check=True)
    (tmp_path / "untracked.txt").write_text("new\n")
    assert git_tags(tmp_path)["git.dirty"] == "false"
    (tmp_path / "tracked.txt").write_text("two\n")
    assert git_tags(tmp_path)["git.dirty"] == "true"


def test_register_without_pipeline_outputs_fails_clearly(tmp_path, capsys):
    assert main(["--repo", str(tmp_path)]) == 2
    assert "run `dvc repro`" in capsys.readouterr().err
