"""Releases: an immutable copy of a retrained models folder for the API's rollout file to name.

The DAG retrains in its checkout's models/, which the next run overwrites; the API must serve a
folder nobody rewrites, so a passed model is copied to <releases>/<run>/models with the dvc.lock
that describes it beside it (rakuten_mm.serving.versions reads the version from there).
"""

import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

MODELS_FOLDER = "models"
# Copied beside the models: the lock names the version, the metrics say why it passed the gate.
RELEASE_FILES = ("dvc.lock", "metrics/evaluate/metrics.json", "params.yaml")
# What `rollout set-candidate` says when the new models are the current ones (nothing to roll out).
SAME_MODELS_MESSAGES = ("has the current version", "holds the same model files")


def release_name(run_id: str) -> str:
    """A folder name from a DAG run id (manual__2026-01-01T00:00:00+00:00 -> manual__2026-01-01T00-00-00-00-00)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)


def publish_release(project_dir: Path, releases_dir: Path, name: str) -> Path:
    """Copy models/ and RELEASE_FILES to releases_dir/name (all or nothing); return the release's models folder."""
    target = releases_dir / name
    if target.is_dir():
        # A retry after a completed copy: the rename below is the copy's last step.
        return target / MODELS_FOLDER
    partial = releases_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(project_dir / MODELS_FOLDER, partial / MODELS_FOLDER)
    for relative in RELEASE_FILES:
        if (project_dir / relative).is_file():
            (partial / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project_dir / relative, partial / relative)
    os.replace(partial, target)
    return target / MODELS_FOLDER


def rollout_environment(conn_type: str | None, host: str | None, port: int | None, path: str | None,
                        login: str | None, password: str | None) -> dict[str, str]:
    """RAKUTEN_ROLLOUT_* variables of the rollout command from an Airflow connection (http://user:pw@host:port)."""
    scheme = "https" if (conn_type or "").lower() == "https" else "http"
    netloc = f"{host}:{port}" if port else (host or "")
    prefix = f"/{quote(path.strip('/'))}" if path and path.strip("/") else ""
    env = {"RAKUTEN_ROLLOUT_API_URL": f"{scheme}://{netloc}{prefix}"}
    if login:
        env["RAKUTEN_ROLLOUT_USER"] = login
    if password:
        env["RAKUTEN_ROLLOUT_PASSWORD"] = password
    return env
