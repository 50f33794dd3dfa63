"""The real server: uvicorn on 127.0.0.1, a token over HTTP, a JPEG upload to /predict."""

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api_support import add_users, product_jpeg

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port nothing listens on right now, on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(base_url: str, server: subprocess.Popen, output: Path) -> None:
    """Poll /status until the models are loaded; fail early if the server died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited with {server.returncode}:\n{output.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base_url}/status", timeout=2).json()["models_loaded"]:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail("uvicorn did not answer within the startup timeout")


def test_uvicorn_serves_a_token_and_a_prediction(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    users_file = tmp_path / "users.json"
    (username, password), = add_users(users_file).items()
    port = free_port()
    env = {**os.environ, "RAKUTEN_API_SECRET_KEY": secrets.token_urlsafe(48),
           "RAKUTEN_API_MODELS_DIR": str(repo / "models"), "RAKUTEN_API_DVC_LOCK": str(repo / "dvc.lock"),
           "RAKUTEN_API_USERS_FILE": str(users_file), "RAKUTEN_API_LOG_DIR": str(tmp_path / "logs")}
    output = tmp_path / "server.out"
    # Run from tmp_path so that no .env of the developer's checkout is read; output to a file,
    # which, unlike a pipe nobody reads, can never fill up and block the server.
    with output.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", "--no-access-log"],
            cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO_ROOT)}, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, server, output)
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
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert '"request_id": "real-1"' in (tmp_path / "logs" / "api.log").read_text()
