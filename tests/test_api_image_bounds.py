"""Bounded work per image, measured on a real uvicorn process: hostile PNGs cost little time and memory.

A few kilobytes of 1-bit PNG can declare 40,000 x 1,000 pixels, under the pixel limit; padding it
to a square would allocate a 40,000² canvas. Each upload here must be answered within a second, and
the server's peak resident memory (VmHWM, reset through /proc/PID/clear_refs before each request)
must not grow by 100 MB.
"""

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_support import add_users, product_jpeg
from benchmarks.bench_api import one_bit_png
from server_utils import background, free_port, wait_for_http

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_SECONDS = 1.0
MAX_RSS_GROWTH_MB = 100


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so that it measures what follows only."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Server:
    """A one-worker uvicorn (the process that answers is the one started) and a token."""

    def __init__(self, process: subprocess.Popen, base_url: str, token: str):
        self.process, self.base_url = process, base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def predict_measured(self, image: bytes) -> tuple[httpx.Response | None, float, float]:
        """POST /predict with the image: (response or None on timeout, seconds, peak RSS growth in MB)."""
        pid = self.process.pid
        reset_peak(pid)
        before = memory_kb(pid)["VmRSS"]
        started = time.perf_counter()
        try:
            response = httpx.post(f"{self.base_url}/predict", headers=self.headers, timeout=MAX_SECONDS * 5,
                                  data={"designation": "Tapis de couloir"},
                                  files={"image": ("photo.png", image, "image/png")})
        except httpx.TimeoutException:
            response = None
        seconds = time.perf_counter() - started
        return response, seconds, (memory_kb(pid)["VmHWM"] - before) / 1024


@pytest.fixture(scope="module")
def server(tiny_pipeline, tmp_path_factory) -> Iterator[Server]:
    """uvicorn as `make serve` starts it, one worker, on the tiny models; stopped after the module."""
    repo, _ = tiny_pipeline
    tmp = tmp_path_factory.mktemp("bounds")
    users_file = tmp / "users.json"
    (username, password), = add_users(users_file).items()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RAKUTEN_API_SECRET_KEY": secrets.token_urlsafe(48),
           "RAKUTEN_API_MODELS_DIR": str(repo / "models"), "RAKUTEN_API_DVC_LOCK": str(repo / "dvc.lock"), "RAKUTEN_API_USERS_FILE": str(users_file),
           "RAKUTEN_API_LOG_DIR": str(tmp / "logs"), "RAKUTEN_API_PREDICT_RATE_LIMIT": "1000/minute",
           "RAKUTEN_API_ROLLOUT_FILE": str(tmp / "rollout.json"), "RAKUTEN_API_PREDICTION_LOG": "",
           "RAKUTEN_API_DRIFT_REPORT": str(tmp / "drift.json"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--no-access-log"]
    output = tmp / "server.out"
    with background(command, output, cwd=tmp, env=env) as process:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/status", process, output, 180, ready=lambda r: r.json()["models_loaded"])
        token = httpx.post(f"{base_url}/token", data={"username": username, "password": password}).json()
        running = Server(process, base_url, token["access_token"])
        # Warm-up: the first image request pays for lazy imports and buffers, not the images below.
        response, _, _ = running.predict_measured(product_jpeg())
        assert response is not None and response.status_code == 200, response
        yield running


@pytest.mark.parametrize("width, height", [(40_000, 1_000), (1, 40_000)], ids=["40000x1000", "1x40000"])
def test_an_extreme_aspect_ratio_is_refused_fast_and_says_why(server, width, height):
    image = one_bit_png(width, height, content=False)
    assert len(image) < 10_000  # a few KB on the wire
    response, seconds, growth_mb = server.predict_measured(image)
    assert response is not None, f"no answer within {MAX_SECONDS * 5} s"
    assert response.status_code == 422, response.text
    assert "aspect ratio" in response.json()["detail"] and f"{width}x{height}" in response.json()["detail"]
    assert seconds < MAX_SECONDS, seconds
    assert growth_mb < MAX_RSS_GROWTH_MB, growth_mb


def test_a_wide_image_within_the_limits_is_shrunk_before_padding(server):
    # 10:1, 10 M pixels: accepted, but padding it at full size would allocate a 10,000² RGB canvas (300 MB).
    image = one_bit_png(10_000, 1_000, content=True)
    response, seconds, growth_mb = server.predict_measured(image)
    assert response is not None, f"no answer within {MAX_SECONDS * 5} s"
    assert response.status_code == 200, response.text
    assert response.json()["modalities"] == ["text", "image"]
    assert seconds < MAX_SECONDS, seconds
    assert growth_mb < MAX_RSS_GROWTH_MB, growth_mb
