"""Rate limits that hold in production: shared in Redis across uvicorn workers, and per real client behind a proxy.

A real `redis-server` (Debian package; .ci/run installs it) and a two-worker uvicorn, both on
127.0.0.1 and started here. The trusted proxy is 127.0.0.2 (any 127/8 address is this machine's):
its X-Forwarded-For names the client; a client connecting from 127.0.0.1 (which uvicorn's own
proxy handling would trust) cannot choose its address with the header.
"""

import json
import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_support import add_users
from server_utils import background, free_port, start_redis, stop_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parents[1]
PROXY_ADDRESS = "127.0.0.2"
TOKEN_LIMIT = 3
PREDICT_LIMIT = 10


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A throw-away redis-server on 127.0.0.1, without persistence; its URL."""
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(process)


class TwoWorkers:
    """A two-worker uvicorn started as `make serve` starts it, its log, and one user's credentials."""

    def __init__(self, base_url: str, log_file: Path, username: str, password: str):
        self.base_url, self.log_file = base_url, log_file
        self.username, self.password = username, password

    def post(self, path: str, source: str = "127.0.0.1", forwarded_for: str | None = None, **kwargs):
        """One request on a new connection from a given loopback address; returns (response, request id)."""
        request_id = uuid.uuid4().hex
        headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
        if forwarded_for:
            headers["X-Forwarded-For"] = forwarded_for
        with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as client:
            return client.post(f"{self.base_url}{path}", headers=headers, **kwargs), request_id

    def login(self, **kwargs) -> int:
        """POST /token for the user; the status code."""
        response, _ = self.post("/token", data={"username": self.username, "password": self.password}, **kwargs)
        return response.status_code

    def worker_pids(self, request_ids: set[str]) -> dict[str, int]:
        """{request id: pid of the worker that answered it}, from the JSON request log."""
        lines = [json.loads(line) for line in self.log_file.read_text().splitlines() if line.startswith("{")]
        return {line["request_id"]: line["pid"] for line in lines if line.get("request_id") in request_ids}


@pytest.fixture(scope="module")
def server(tiny_pipeline, redis_url, tmp_path_factory) -> Iterator[TwoWorkers]:
    """Two workers sharing their rate-limit counters in Redis, behind the proxy PROXY_ADDRESS."""
    repo, _ = tiny_pipeline
    tmp = tmp_path_factory.mktemp("limits")
    users_file = tmp / "users.json"
    (username, password), = add_users(users_file).items()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RAKUTEN_API_SECRET_KEY": secrets.token_urlsafe(48),
           "RAKUTEN_API_MODELS_DIR": str(repo / "models"), "RAKUTEN_API_DVC_LOCK": str(repo / "dvc.lock"),
           "RAKUTEN_API_USERS_FILE": str(users_file), "RAKUTEN_API_LOG_DIR": str(tmp / "logs"),
           "RAKUTEN_API_ROLLOUT_FILE": str(tmp / "rollout.json"), "RAKUTEN_API_PREDICTION_LOG": "",
           "RAKUTEN_API_DRIFT_REPORT": str(tmp / "drift.json"), "RAKUTEN_API_RATE_LIMIT_STORAGE_URI": redis_url,
           "RAKUTEN_API_TRUSTED_PROXIES": PROXY_ADDRESS, "RAKUTEN_API_TOKEN_RATE_LIMIT": f"{TOKEN_LIMIT}/minute",
           "RAKUTEN_API_PREDICT_RATE_LIMIT": f"{PREDICT_LIMIT}/minute", "TF_CPP_MIN_LOG_LEVEL": "2"}
    port = free_port()
    # The arguments of `make serve` and docker/api-entrypoint.sh.
    command = [sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "2", "--no-access-log", "--no-proxy-headers"]
    output = tmp / "server.out"
    with background(command, output, cwd=tmp, env=env) as process:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/status", process, output, 180, ready=lambda r: r.json()["models_loaded"])
        yield TwoWorkers(base_url, tmp / "logs" / "api.log", username, password)


def test_forwarded_for_names_the_client_only_when_a_trusted_proxy_sends_it(server):
    # Behind the proxy, each client has its own /token budget.
    assert [server.login(source=PROXY_ADDRESS, forwarded_for="203.0.113.7") for _ in range(TOKEN_LIMIT + 1)] == [
        200] * TOKEN_LIMIT + [429]
    assert server.login(source=PROXY_ADDRESS, forwarded_for="203.0.113.8") == 200
    # The proxy appends the peer it saw: what the client wrote before that is not believed.
    assert server.login(source=PROXY_ADDRESS, forwarded_for="203.0.113.8, 203.0.113.7") == 429
    # A direct client's header is ignored: changing it does not buy a new budget.
    statuses = [server.login(forwarded_for=f"198.51.100.{i}") for i in range(TOKEN_LIMIT + 1)]
    assert statuses == [200] * TOKEN_LIMIT + [429]


def test_the_predict_limit_holds_across_workers(server):
    token, _ = server.post("/token", source=PROXY_ADDRESS, forwarded_for="192.0.2.1",
                           data={"username": server.username, "password": server.password})
    assert token.status_code == 200, token.text
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    allowed = [server.post("/predict", headers=auth, data={"designation": "Lampe de chevet"})[0].status_code
               for _ in range(PREDICT_LIMIT)]
    assert allowed == [200] * PREDICT_LIMIT
    # Every request past the limit is refused, until both workers have refused at least one.
    refused: dict[str, int] = {}
    for _ in range(300):
        response, request_id = server.post("/predict", headers=auth, data={"designation": "Lampe de chevet"})
        refused[request_id] = response.status_code
        if len(set(server.worker_pids(set(refused)).values())) == 2:
            break
    else:
        pytest.fail("300 new connections all went to one worker")
    assert set(refused.values()) == {429}, refused
