"""Servers that tests start on 127.0.0.1: a free port, a background process, waiting until it answers."""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis


def free_port() -> int:
    """A TCP port nothing listens on right now, on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, group: bool = False) -> None:
    """SIGTERM (to its whole process group when group), SIGKILL after 20 s."""
    send = (lambda sig: os.killpg(process.pid, sig)) if group else process.send_signal
    send(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


@contextmanager
def background(command: list[str], log_file: Path, group: bool = False, **popen_args) -> Iterator[subprocess.Popen]:
    """Run a server for the block, its output to a file (a pipe nobody reads could block it); stop it after.

    group: start it in a session of its own and stop the whole group (servers that fork workers).
    """
    with log_file.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=group,
                                   **popen_args)
    try:
        yield process
    finally:
        stop_process(process, group)


def wait_for_http(url: str, process: subprocess.Popen, log_file: Path, timeout_s: float = 60,
                  ready: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200) -> None:
    """Poll url until ready(response); fail early if the server exited, or after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited with {process.returncode}:\n{log_file.read_text()[-4000:]}")
        try:
            if ready(httpx.get(url, timeout=2)):
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s} s:\n{log_file.read_text()[-4000:]}")


def missing(message: str) -> None:
    """A test's tool is not installed: fail under CI (CI=true; .ci/run installs it), skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (.ci/run installs it on CI)")
    pytest.skip(message, allow_module_level=True)


def required_program(name: str, package: str, path: str | None = None) -> str:
    """Path of a program the test starts (found on path, default PATH); missing() names its package when absent."""
    found = shutil.which(name, path=path) if path else shutil.which(name)
    if found is None:
        missing(f"{name} not found: {package}")
    return found


def start_redis(port: int, folder: Path, timeout_s: float = 30) -> subprocess.Popen:
    """A throw-away redis-server on 127.0.0.1:port, without persistence, answering PING; the caller stops it."""
    command = [required_program("redis-server", "apt-get install -y redis-server"), "--bind", "127.0.0.1", "--port", str(port),
               "--save", "", "--appendonly", "no", "--dir", str(folder)]
    with (folder / f"redis-{port}.out").open("a") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    client, deadline = redis.Redis(host="127.0.0.1", port=port), time.monotonic() + timeout_s
    while True:
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                pytest.fail(f"redis-server did not start:\n{(folder / f'redis-{port}.out').read_text()[-2000:]}")
            time.sleep(0.1)
