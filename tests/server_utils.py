"""Servers that tests start on 127.0.0.1: a free port, a background process, waiting until it answers."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


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
