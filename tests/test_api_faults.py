"""Faults degrade, never 500: a real redis-server stopped and restarted under a running API; a bad log path.

The API (uvicorn, one worker) keeps its rate-limit counters in a throw-away redis-server; both on
127.0.0.1 and started here. While Redis is down, sign-in and predictions are still answered
(limits counted in the worker's memory), /health/ready says "degraded" and the public gauge
rakuten_rate_limit_store_degraded is 1; once Redis is back, both return to normal.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_support import add_users
from server_utils import background, free_port, start_redis, stop_process, wait_for_http
from test_api_server import api_env

RECOVERY_TIMEOUT_S = 60  # slowapi looks at a dead store again after 1, 2, 4 ... 32 s


class Stack:
    """The API's URL, a user, and a way to stop and restart its Redis."""

    def __init__(self, base_url: str, username: str, password: str, redis: "RedisControl", log_file: Path):
        self.base_url, self.username, self.password = base_url, username, password
        self.redis, self.log_file = redis, log_file

    def answers(self) -> dict[str, int]:
        """Status codes of a sign-in, a prediction with its token, and readiness."""
        token = httpx.post(f"{self.base_url}/token", data={"username": self.username, "password": self.password},
                           timeout=30)
        codes = {"token": token.status_code}
        if token.status_code == 200:
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            codes["predict"] = httpx.post(f"{self.base_url}/predict", headers=auth, timeout=30,
                                          data={"designation": "Lampe de chevet"}).status_code
        return codes

    def readiness(self) -> dict:
        """GET /health/ready's body."""
        return httpx.get(f"{self.base_url}/health/ready", timeout=30).json()

    def degraded_gauge(self) -> float:
        """rakuten_rate_limit_store_degraded from an anonymous scrape."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=30).text
        line, = [line for line in text.splitlines() if line.startswith("rakuten_rate_limit_store_degraded ")]
        return float(line.split()[1])


class RedisControl:
    """A redis-server on a fixed port, which the test stops and starts again."""

    def __init__(self, port: int, tmp: Path):
        self.port, self.tmp, self.process = port, tmp, None

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        self.process = start_redis(self.port, self.tmp)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        stop_process(self.process)


@pytest.fixture(scope="module")
def stack(tiny_pipeline, tmp_path_factory) -> Iterator[Stack]:
    """uvicorn on the tiny models counting its limits in a Redis the tests may stop."""
    repo, _ = tiny_pipeline
    tmp = tmp_path_factory.mktemp("faults")
    redis = RedisControl(free_port(), tmp)
    redis.start()
    users_file = tmp / "users.json"
    (username, password), = add_users(users_file).items()
    env = {**api_env(repo, tmp, users_file), "RAKUTEN_API_RATE_LIMIT_STORAGE_URI": f"redis://127.0.0.1:{redis.port}/0",
           "RAKUTEN_API_TOKEN_RATE_LIMIT": "1000/minute", "RAKUTEN_API_PREDICT_RATE_LIMIT": "1000/minute",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--no-access-log", "--no-proxy-headers"]
    output = tmp / "server.out"
    try:
        with background(command, output, cwd=tmp, env=env) as process:
            base_url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base_url}/status", process, output, 180, ready=lambda r: r.json()["models_loaded"])
            yield Stack(base_url, username, password, redis, tmp / "logs" / "api.log")
    finally:
        redis.stop()


def test_a_redis_outage_degrades_the_limits_and_never_answers_500(stack):
    assert stack.answers() == {"token": 200, "predict": 200}
    assert stack.readiness() == {"status": "ready", "models_loaded": True, "rate_limit_store": "ok"}
    assert stack.degraded_gauge() == 0

    stack.redis.stop()
    during = [stack.answers() for _ in range(3)]
    assert during == [{"token": 200, "predict": 200}] * 3
    assert stack.readiness() == {"status": "degraded", "models_loaded": True, "rate_limit_store": "unreachable"}
    assert stack.degraded_gauge() == 1
    assert "rate-limit store unreachable" in stack.log_file.read_text()

    stack.redis.start()
    assert stack.readiness()["status"] == "ready"
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while stack.degraded_gauge() != 0 and time.monotonic() < deadline:
        assert stack.answers() == {"token": 200, "predict": 200}
        time.sleep(1)
    assert stack.degraded_gauge() == 0, "the limiter never went back to Redis"
    assert "rate-limit store reachable again" in stack.log_file.read_text()
    assert stack.answers() == {"token": 200, "predict": 200}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_prediction_log_path_that_cannot_be_created_stops_the_start_in_one_line(tiny_pipeline, tmp_path, workers):
    repo, _ = tiny_pipeline
    env = {**api_env(repo, tmp_path, tmp_path / "users.json"),
           # /proc refuses new folders, even to root.
           "RAKUTEN_API_PREDICTION_LOG": "/proc/no-such-folder/predictions.jsonl"}
    result = subprocess.run([sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", "--host", "127.0.0.1",
                             "--port", str(free_port()), "--workers", workers], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    # One worker exits with uvicorn's start-up failure code; with several, uvicorn's supervisor stops
    # instead of restarting them (its own exit code is then 0).
    assert result.returncode == (3 if workers == "1" else 0)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and set(errors) == {
        "error: the API cannot start: cannot create the prediction log's folder /proc/no-such-folder "
        "(RAKUTEN_API_PREDICTION_LOG=/proc/no-such-folder/predictions.jsonl): No such file or directory"}, result.stderr
