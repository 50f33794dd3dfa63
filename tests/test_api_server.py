"""The real server: uvicorn on 127.0.0.1, a token over HTTP, a JPEG upload, and a rollout across two workers."""

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api_support import add_users, candidate_models, product_jpeg
from server_utils import background, free_port, wait_for_http
from rakuten_mm.serving.rollout import read_state

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 180


def wait_until_up(base_url: str, server: subprocess.Popen, output: Path) -> None:
    """Poll /status until the models are loaded; fail early if the server died."""
    wait_for_http(f"{base_url}/status", server, output, STARTUP_TIMEOUT_S,
                  ready=lambda response: response.json()["models_loaded"])


def api_env(repo: Path, tmp_path: Path, users_file: Path) -> dict[str, str]:
    """Environment of a server (and of the rollout command) on the tiny models, files under tmp_path."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RAKUTEN_API_SECRET_KEY": secrets.token_urlsafe(48),
            "RAKUTEN_API_MODELS_DIR": str(repo / "models"), "RAKUTEN_API_DVC_LOCK": str(repo / "dvc.lock"),
            "RAKUTEN_API_USERS_FILE": str(users_file), "RAKUTEN_API_LOG_DIR": str(tmp_path / "logs"),
            "RAKUTEN_API_ROLLOUT_FILE": str(tmp_path / "deployments" / "rollout.json"),
            "RAKUTEN_API_PREDICTION_LOG": str(tmp_path / "logs" / "predictions.jsonl"),
            "RAKUTEN_API_DRIFT_REPORT": str(tmp_path / "drift.json"),
            "RAKUTEN_API_METRICS_TOKEN": secrets.token_urlsafe(24)}


@contextmanager
def running_server(env: dict[str, str], tmp_path: Path, workers: int = 1) -> Iterator[str]:
    """uvicorn on a free port with this environment; yields its base URL and stops it afterwards."""
    port = free_port()
    output = tmp_path / "server.out"
    # Run from tmp_path so that no .env of the developer's checkout is read.
    command = [sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--no-access-log"]
    with background(command, output, cwd=tmp_path, env=env) as server:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_up(base_url, server, output)
        yield base_url


def check_a_token_and_a_prediction(base_url: str, username: str, password: str) -> None:
    """A token over HTTP, a JPEG upload to /predict, the request id echoed, no token refused."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = client.post("/token", data={"username": username, "password": password})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}", "X-Request-ID": "real-1"}
        response = client.post("/predict", headers=headers, data={"designation": "Piscine hors sol ronde"},
                               files={"image": ("photo.jpg", product_jpeg(), "image/jpeg")})
        assert response.status_code == 200, response.text
        assert response.json()["modalities"] == ["text", "image"]
        assert response.headers["X-Request-ID"] == "real-1"
        assert client.post("/predict", data={"designation": "x"}).status_code == 401


def rollout_command(env: dict[str, str], tmp_path: Path, password: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m rakuten_mm.serving.rollout ...` as an operator runs it, the admin password on stdin."""
    return subprocess.run([sys.executable, "-m", "rakuten_mm.serving.rollout", *args, "--password-stdin"],
                          input=password + "\n", capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def versions_of_both_workers(base_url: str, headers: dict, tmp_path: Path, request_ids: str) -> set[str]:
    """Send /predict on new connections until both workers answered; the versions that answered."""
    for attempt in range(300):
        response = httpx.post(f"{base_url}/predict", headers={**headers, "X-Request-ID": f"{request_ids}-{attempt}"},
                              data={"designation": "Lampe de chevet", "productid": str(attempt)}, timeout=30)
        assert response.status_code == 200, response.text
        lines = [json.loads(line) for line in (tmp_path / "logs" / "api.log").read_text().splitlines()]
        answered = [line for line in lines if str(line.get("request_id", "")).startswith(f"{request_ids}-")]
        if len({line["pid"] for line in answered}) == 2:
            return {line["model_version"] for line in answered}
    pytest.fail("300 new connections all went to one worker")


def check_metrics_of_all_workers(base_url: str, tmp_path: Path, version: str, metrics_token: str) -> None:
    """Multiprocess mode: /metrics (with the token) counts every worker's predictions, and shows the drift series once."""
    (tmp_path / "drift.json").write_text(json.dumps({"drift_detected": True, "features": {
        "confidence": {"test": "psi", "score": 0.4, "threshold": 0.2, "drifted": True}}}))
    # Each worker's prediction log thread writes after the answer; shutdown writes what is left.
    time.sleep(1)
    text = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=30).text
    metrics = {family.name: family.samples for family in text_string_to_metric_families(text)}
    counted = sum(s.value for s in metrics["rakuten_predictions"]
                  if s.name.endswith("_total") and s.labels["model_version"] == version)
    logged = [json.loads(line) for line in (tmp_path / "logs" / "predictions.jsonl").read_text().splitlines()]
    assert counted == sum(line["model_version"] == version for line in logged) > 0
    assert [(s.labels["feature"], s.value) for s in metrics["rakuten_drift_score"]] == [("confidence", 0.4)]
    served = {(s.labels["variant"], s.labels["version"]) for s in metrics["rakuten_model_info"] if s.value}
    assert served == {("current", version)}


def test_two_workers_serve_follow_the_rollout_command_and_export_shared_metrics(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    candidate = candidate_models(repo / "models", tmp_path / "candidate")
    broken = candidate_models(repo / "models", tmp_path / "broken", text_weight=0.1)
    (broken / "text" / "model.keras").write_bytes(b"not a keras file")
    users_file = tmp_path / "users.json"
    (user, user_password), = add_users(users_file).items()
    (admin, password), = add_users(users_file, prefix="admin", admin=True).items()
    (tmp_path / "prometheus").mkdir()
    # Workers look at the rollout file on every request here (default: at most once a second).
    env = {**api_env(repo, tmp_path, users_file), "RAKUTEN_ROLLOUT_USER": admin,
           "RAKUTEN_API_ROLLOUT_CHECK_SECONDS": "0", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
           # Every rollout command signs in: six of them within a minute pass the default 5/minute
           # sign-in limit, which tests/test_api_rate_limits.py checks; here it would only add waiting.
           "RAKUTEN_API_TOKEN_RATE_LIMIT": "100/minute",
           # Reaching both workers takes as many new connections as the balancing needs; one CI run
           # sent more than ten to one worker within a minute and met the default 10/minute limit.
           "RAKUTEN_API_PREDICT_RATE_LIMIT": "1000/minute"}
    # Two workers, as `make serve` runs them.
    with running_server(env, tmp_path, workers=2) as base_url:
        check_a_token_and_a_prediction(base_url, user, user_password)
        env["RAKUTEN_ROLLOUT_API_URL"] = base_url
        original = httpx.get(f"{base_url}/status").json()["model_version"]
        token = httpx.post(f"{base_url}/token", data={"username": admin, "password": password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        added = rollout_command(env, tmp_path, password, "set-candidate", str(candidate), "--share", "0.5")
        assert added.returncode == 0 and "API reloaded" in added.stdout, added.stdout + added.stderr
        new = httpx.get(f"{base_url}/status").json()["candidate"]["model_version"]
        promoted = rollout_command(env, tmp_path, password, "promote")
        assert promoted.returncode == 0 and f"API reloaded: current {new}" in promoted.stdout, promoted.stderr
        # Both workers answer with the promoted model, not only the one the command reached.
        assert versions_of_both_workers(base_url, headers, tmp_path, "after-promote") == {new}
        # Models that do not load: the API keeps the promoted ones and the command puts the file back.
        refused = rollout_command(env, tmp_path, password, "set-candidate", str(broken))
        assert refused.returncode == 1 and "restored" in refused.stderr, refused.stdout + refused.stderr
        state = read_state(tmp_path / "deployments" / "rollout.json", repo / "models")
        assert (state.current, state.candidate) == (str(candidate), None)
        check_metrics_of_all_workers(base_url, tmp_path, new, env["RAKUTEN_API_METRICS_TOKEN"])
        back = rollout_command(env, tmp_path, password, "rollback")
        assert back.returncode == 0 and f"API reloaded: current {original}" in back.stdout, back.stderr
        assert versions_of_both_workers(base_url, headers, tmp_path, "after-rollback") == {original}
    assert '"request_id": "real-1"' in (tmp_path / "logs" / "api.log").read_text()
