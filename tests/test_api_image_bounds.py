"""Bounded work per image, measured on a real uvicorn process: hostile PNGs cost little time and memory.

A few kilobytes of 1-bit PNG can declare 40,000 x 1,000 pixels, under the pixel limit; padding it
to a square would allocate a 40,000² canvas. Each upload here must be answered within a second, and
the server's peak resident memory (VmHWM, reset through /proc/PID/clear_refs before each request)
must not grow by 100 MB. PNG and WebP decode whole: a request may decode only so many of their
pixels, one large decode at a time per worker, so two batches of 128 40-MP PNGs stay under a bound.
"""

import base64
import io
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

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


def palette_png_40mp() -> bytes:
    """An 8,000 x 5,000 palette PNG with a transparent background (60 KB): the costliest kind to decode whole."""
    image = Image.new("P", (8_000, 5_000), 0)
    image.putpalette([255, 255, 255, 200, 30, 30] + [0] * 762)
    ImageDraw.Draw(image).ellipse((1_000, 1_000, 6_000, 4_000), fill=1)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    return buffer.getvalue()


def send_batches(server: Server, batch: list[dict], count: int) -> tuple[list[httpx.Response], float, float]:
    """`count` copies of a batch sent at once: (answers, seconds, peak RSS growth of the worker in MB)."""
    pid = server.process.pid
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{server.base_url}/predict/batch", headers=server.headers,
                                                     json=batch, timeout=120), range(count)))
    return answers, time.perf_counter() - started, (memory_kb(pid)["VmHWM"] - before) / 1024


def test_batches_of_128_40_mp_pngs_cost_one_decode_of_memory_however_many_at_once(server):
    # Decoded whole, one such PNG costs about 500 MB at its peak, and a second decoded beside it as
    # much again; 128 of them take minutes. The request budget (2 x 40 MP by default) decodes two per
    # batch, one at a time per worker; the others are predicted from their text, saying why.
    encoded = base64.b64encode(palette_png_40mp()).decode()
    batch = [{"designation": f"Tapis {row}", "image_base64": encoded} for row in range(128)]
    _, _, alone_mb = send_batches(server, batch, 1)
    answers, seconds, together_mb = send_batches(server, batch, 2)
    for answer in answers:
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert [p["modalities"] for p in predictions[:2]] == [["text", "image"]] * 2
        assert all(p["modalities"] == ["text"] and "budget" in p["note"] for p in predictions[2:])
    assert seconds < 30, seconds
    assert alone_mb < 1024, alone_mb
    # Two decodes side by side would nearly double the peak.
    assert together_mb < 1.3 * alone_mb, (alone_mb, together_mb)


def test_a_large_decode_leaves_no_memory_behind_in_its_thread():
    # A thread pool keeps its threads, and glibc keeps what a thread freed in that thread's arena:
    # without handing it back, each thread that once decoded a 40 MP PNG would hold ~340 MB.
    from rakuten_mm.features.images import preprocess_image_bytes
    from rakuten_mm.serving.deployment import DecodeBudget

    image, own = palette_png_40mp(), os.getpid()
    budget = DecodeBudget(10**9, threading.Lock())
    decoded, finish = threading.Event(), threading.Event()

    def decode_and_stay() -> None:
        with budget.take(image):
            preprocess_image_bytes(image, 64)
        decoded.set()
        finish.wait(60)

    before = memory_kb(own)["VmRSS"]
    worker = threading.Thread(target=decode_and_stay)
    worker.start()
    try:
        assert decoded.wait(60)
        peak_mb, kept_mb = (memory_kb(own)["VmHWM"] - before) / 1024, (memory_kb(own)["VmRSS"] - before) / 1024
    finally:
        finish.set()
        worker.join()
    assert peak_mb > 200, peak_mb  # it did decode the image whole
    assert kept_mb < 50, kept_mb
