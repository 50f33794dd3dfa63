"""The `storage` S3 remote against a local moto server: push, pull, a fresh clone, and a dead server.

Each test works in its own copy of the tiny pipeline's repository, so later tests still see the
fixture as it was. moto is in memory: a restarted server is empty.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml

from pipeline_utils import copy_checkout, run
from server_utils import free_port

pytestmark = pytest.mark.slow
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
REMOTE = "storage"
DUMMY_KEY = "testing"
# Small timeouts and a single attempt so that a dead server fails a push in seconds, not minutes.
FAST_FAILURE = {"connect_timeout": "2", "read_timeout": "5"}
PUSH_FAILURE_BOUND_S = 30


@contextlib.contextmanager
def moto_server(port: int, bucket: str, startup_timeout_s: float = 30) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1:port with an empty bucket; yields its URL, stops it on exit."""
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {url}")
                time.sleep(0.2)
        s3_client(url).create_bucket(Bucket=bucket)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def s3_client(url: str):
    """A boto3 S3 client for the local server."""
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=DUMMY_KEY,
                        aws_secret_access_key=DUMMY_KEY, region_name="us-east-1")


def remote_bucket(repo: Path) -> str:
    """The bucket of the project's default remote, as committed in .dvc/config."""
    url = run(["dvc", "remote", "list"], repo).stdout.split()
    assert url[0] == REMOTE and url[1].startswith("s3://"), url
    return url[1].removeprefix("s3://").split("/")[0]


def point_remote_at(repo: Path, url: str) -> None:
    """Local-only remote settings (.dvc/config.local), as `make s3-local` writes them."""
    settings = {"endpointurl": url, "access_key_id": DUMMY_KEY, "secret_access_key": DUMMY_KEY, **FAST_FAILURE}
    for name, value in settings.items():
        run(["dvc", "remote", "modify", "--local", REMOTE, name, value], repo)


def cached_outs(repo: Path) -> list[str]:
    """Paths of the outs DVC caches (and pushes): every out not marked `cache: false`."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for out in stage.get("outs", []):
            if isinstance(out, str):
                paths.append(out)
            elif next(iter(out.values())).get("cache", True):
                paths.append(next(iter(out)))
    return paths


def file_md5s(repo: Path, paths: list[str]) -> dict[str, str]:
    """md5 of every file under the given paths (files or directories), by relative path."""
    digests = {}
    for path in paths:
        root = repo / path
        for file in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            digests[str(file.relative_to(repo))] = hashlib.md5(file.read_bytes()).hexdigest()
    return digests


def delete_outs_and_cache(repo: Path, paths: list[str]) -> None:
    """Remove the local cache and every cached out, as on a machine that has only git."""
    shutil.rmtree(repo / ".dvc" / "cache")
    for path in paths:
        target = repo / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()


@pytest.fixture
def repo_copy(tiny_pipeline, tmp_path) -> Path:
    """A copy of the tiny pipeline's repository (outs, cache, git history) to push from."""
    source, _ = tiny_pipeline
    return copy_checkout(source, tmp_path / "repo")


@pytest.fixture(autouse=True)
def single_aws_attempt(monkeypatch):
    """botocore retries a refused connection several times by default: once is enough here."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def test_push_then_pull_restores_every_out_byte_identical(repo_copy):
    outs = cached_outs(repo_copy)
    before = file_md5s(repo_copy, outs)
    assert len(before) > 10 and any(name.startswith("models/") for name in before)
    with moto_server(free_port(), remote_bucket(repo_copy)) as url:
        point_remote_at(repo_copy, url)
        run(["dvc", "push", "--run-cache"], repo_copy)
        assert s3_client(url).list_objects_v2(Bucket=remote_bucket(repo_copy))["KeyCount"] > 0
        delete_outs_and_cache(repo_copy, outs)
        assert not (repo_copy / "models" / "fusion").exists()
        run(["dvc", "pull"], repo_copy)
        assert file_md5s(repo_copy, outs) == before
        assert "in sync" in run(["dvc", "status", "-c"], repo_copy).stdout


def test_fresh_clone_reproduces_nothing_after_pulling(repo_copy, tmp_path):
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "pipeline results and dvc.lock"], repo_copy)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo_copy), str(clone)], tmp_path)
    assert not (clone / "models" / "fusion").exists() and (clone / "dvc.lock").is_file()
    with moto_server(free_port(), remote_bucket(repo_copy)) as url:
        point_remote_at(repo_copy, url)
        run(["dvc", "push", "--run-cache"], repo_copy)
        point_remote_at(clone, url)
        result = run(["dvc", "repro", "--pull"], clone)
    output = result.stdout + result.stderr
    assert "Running stage" not in output, output[-3000:]
    outs = cached_outs(repo_copy)
    assert file_md5s(clone, outs) == file_md5s(repo_copy, outs)
    assert "up to date" in run(["dvc", "status"], clone).stdout


def test_push_to_a_dead_server_fails_fast_and_harms_nothing(repo_copy):
    outs = cached_outs(repo_copy)
    before = file_md5s(repo_copy, outs)
    cache_before = file_md5s(repo_copy, [".dvc/cache"])
    port, bucket = free_port(), remote_bucket(repo_copy)
    with moto_server(port, bucket) as url:
        point_remote_at(repo_copy, url)
    # The server is gone: the push must fail, and soon.
    started = time.monotonic()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    failed = subprocess.run(["dvc", "push"], cwd=repo_copy, env=env, capture_output=True, text=True,
                            timeout=PUSH_FAILURE_BOUND_S * 3)
    elapsed = time.monotonic() - started
    assert failed.returncode != 0, failed.stdout
    assert "Could not connect to the endpoint URL" in failed.stderr, failed.stderr[-2000:]
    assert elapsed < PUSH_FAILURE_BOUND_S, f"a push to a dead server took {elapsed:.0f} s"
    assert file_md5s(repo_copy, outs) == before
    assert file_md5s(repo_copy, [".dvc/cache"]) == cache_before
    # Same port again; moto kept nothing, so the bucket is new and everything is pushed again.
    with moto_server(port, bucket):
        pushed = run(["dvc", "push"], repo_copy).stdout
        assert "pushed" in pushed
        assert "in sync" in run(["dvc", "status", "-c"], repo_copy).stdout
