"""A real headless Chromium (Debian's package) driven by Playwright, and an API server for it on 127.0.0.1.

Used by tests/test_console.py and benchmarks/bench_console.py. Playwright never downloads a browser
here: it drives /usr/bin/chromium (RAKUTEN_CHROMIUM to override), which `.ci/run` installs.
"""

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


from server_utils import background, free_port, required_program, wait_for_http

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RAKUTEN_CHROMIUM", "/usr/bin/chromium")
# No traffic of the browser's own (updates, sync, QUIC probes), no first-run pages; the profile is fresh.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--lang=fr-FR"]
VIEWPORT = {"width": 1100, "height": 860}
SERVER_STARTUP_S = 180


def chromium_binary() -> str:
    """Path of Debian's Chromium; missing fails under CI (CI=true) and skips elsewhere."""
    return required_program(CHROMIUM, "apt-get install -y --no-install-recommends chromium chromium-driver")


@contextmanager
def chromium_context(user_data_dir: Path, executable: str) -> Iterator:
    """One headless Chromium with a fresh profile in user_data_dir, as a Playwright browser context (French)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            locale="fr-FR", viewport=VIEWPORT, accept_downloads=True)
        try:
            yield context
        finally:
            context.close()


def server_env(repo: Path, tmp: Path, **settings: str) -> dict[str, str]:
    """Environment of an API on the tiny pipeline's models, with its files under tmp; RAKUTEN_API_<KEY> overrides."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RAKUTEN_API_SECRET_KEY": secrets.token_urlsafe(48),
           "RAKUTEN_API_MODELS_DIR": str(repo / "models"), "RAKUTEN_API_DVC_LOCK": str(repo / "dvc.lock"),
           "RAKUTEN_API_USERS_FILE": str(tmp / "users.json"), "RAKUTEN_API_LOG_DIR": str(tmp / "logs"),
           "RAKUTEN_API_ROLLOUT_FILE": str(tmp / "deployments" / "rollout.json"),
           "RAKUTEN_API_ROLLOUT_CHECK_SECONDS": "0", "RAKUTEN_API_BCRYPT_ROUNDS": "4",
           "RAKUTEN_API_PREDICTION_LOG": str(tmp / "logs" / "predictions.jsonl"),
           "RAKUTEN_API_DRIFT_REPORT": str(tmp / "drift.json"),
           "RAKUTEN_API_REVIEW_DATABASE": str(tmp / "review" / "queue.sqlite")}
    env.update({f"RAKUTEN_API_{key.upper()}": value for key, value in settings.items()})
    return env


@contextmanager
def running_server(env: dict[str, str], tmp: Path) -> Iterator[str]:
    """uvicorn (one worker) on a free loopback port with this environment; yields its base URL."""
    port = free_port()
    output = tmp / "server.out"
    command = [sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log"]
    # Run from tmp so that no .env of the developer's checkout is read.
    with background(command, output, cwd=tmp, env=env) as server:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/status", server, output, SERVER_STARTUP_S,
                      ready=lambda response: response.json()["models_loaded"])
        yield base_url
