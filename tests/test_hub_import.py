"""`import.source: hub` against a local Hugging Face-compatible endpoint on 127.0.0.1 (HF_ENDPOINT).

The server answers the requests `hf_hub_download` makes: HEAD then GET on
/datasets/<repo>/resolve/<revision>/<path>, with the headers the client requires (X-Repo-Commit,
ETag, Content-Length), and the hub's 404s with X-Error-Code for an unknown revision or file.
"""

import contextlib
import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline_utils import REPO_ROOT
from rakuten_mm.data.archive import write_stored_zip
from rakuten_mm.data.raw_layout import image_filename

REPO_ID = "someone/rakuten-mini"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = {"x_train": "X_train_update.csv", "y_train": "Y_train_CVw08PX.csv", "x_test": "X_test_update.csv",
         "images_train": "images_train.zip", "images_test": "images_test.zip"}
# Labelled rows (productid, imageid, code, photo colour or None) and one unlabelled row.
LABELLED = [(101, 201, 10, (200, 30, 30)), (102, 202, 40, (30, 200, 30)), (103, 203, 50, None),
            (104, 204, 2583, (30, 30, 200))]
UNLABELLED = [(105, 205, None, (200, 200, 30))]


def jpeg(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv().encode("utf-8")


def dataset_repo() -> dict[str, bytes]:
    """The repo's files by path: the three CSVs and images.zip nested as in the real dataset repo."""
    rows = LABELLED + UNLABELLED
    table = pd.DataFrame({"designation": [f"Produit {p}" for p, *_ in rows], "description": [""] * len(rows),
                          "productid": [p for p, *_ in rows], "imageid": [i for _, i, *_ in rows]})
    members = [(f"images/image_{'train' if k < len(LABELLED) else 'test'}/{image_filename(i, p)}", jpeg(c))
               for k, (p, i, _, c) in enumerate(rows) if c is not None]
    archive = io.BytesIO()
    write_stored_zip(archive, members)
    return {
        "X_train_update.csv": csv_bytes(table.iloc[:len(LABELLED)]),
        "Y_train_CVw08PX.csv": csv_bytes(pd.DataFrame({"prdtypecode": [c for *_, c, _ in LABELLED]})),
        "X_test_update.csv": csv_bytes(table.iloc[len(LABELLED):]),
        "images.zip": archive.getvalue(),
    }


class HubHandler(BaseHTTPRequestHandler):
    """resolve/<revision>/<path> for one dataset repo at one commit ("main" points to it)."""

    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self.answer(body=False)

    def do_GET(self):  # noqa: N802
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        """The file with the hub's headers, or the hub's 404 with its X-Error-Code."""
        self.requests.append(f"{self.command} {self.path}")
        prefix = f"/datasets/{REPO_ID}/resolve/"
        revision, _, path = self.path.split("?")[0].removeprefix(prefix).partition("/")
        revision, path = unquote(revision), unquote(path)
        if not self.path.startswith(prefix):
            return self.error(404, "RepoNotFound", "Repository not found")
        if revision not in (COMMIT, "main"):
            return self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if path not in self.files:
            return self.error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        data = self.files[path]
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def error(self, status: int, code: str, message: str) -> None:
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet: the test keeps its own request list."""


@contextmanager
def local_hub() -> Iterator[tuple[str, list[str], dict[str, bytes]]]:
    """Serve the dataset repo on a free loopback port; yield (endpoint, request log, files); stop it after."""
    handler = type("Handler", (HubHandler,), {"files": dataset_repo(), "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests, handler.files
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_import(tmp_path, endpoint: str, revision: str, offline: bool = False,
               timeout_s: float = 5) -> subprocess.CompletedProcess:
    """The import stage in a subprocess, its hub at endpoint, its HF cache under tmp_path."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["import"]["source"] = "hub"
    params["import"]["hub"].update(repo_id=REPO_ID, revision=revision, timeout_s=timeout_s)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("HF_") and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "stages.import_data", "--out", str(tmp_path / "raw"),
                           "--params", str(tmp_path / "params.yaml")],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def raw_contents(raw) -> dict[str, bytes]:
    return {name: (raw / name).read_bytes() for name in FILES.values()}


def test_hub_import_at_a_pinned_commit_then_offline_from_the_cache(tmp_path):
    with local_hub() as (endpoint, requests, served):
        result = run_import(tmp_path, endpoint, COMMIT)
        assert result.returncode == 0, result.stderr[-3000:]
        downloads = [request for request in requests if request.startswith("GET ")]
        assert sorted(downloads) == sorted(f"GET /datasets/{REPO_ID}/resolve/{COMMIT}/{path}" for path in served)
    raw = tmp_path / "raw"
    assert (raw / FILES["y_train"]).read_bytes() == served["Y_train_CVw08PX.csv"]
    labelled = pd.read_csv(raw / FILES["x_train"], index_col=0)
    assert labelled["productid"].tolist() == [p for p, *_ in LABELLED]
    # Each row's photo, found under images/image_train/ in the hub's zip, is packed under its own name.
    with zipfile.ZipFile(raw / FILES["images_train"]) as archive:
        assert archive.namelist() == [image_filename(i, p) for p, i, _, c in LABELLED if c is not None]
        for productid, imageid, _, color in LABELLED:
            if color is not None:
                pixel = Image.open(io.BytesIO(archive.read(image_filename(imageid, productid)))).getpixel((8, 8))
                assert max(abs(a - b) for a, b in zip(pixel, color, strict=True)) < 12, (productid, pixel, color)
    with zipfile.ZipFile(raw / FILES["images_test"]) as archive:
        assert archive.namelist() == [image_filename(205, 105)]
    first = raw_contents(raw)
    # The server is gone: the second run can only succeed from the HF cache.
    again = run_import(tmp_path, endpoint, COMMIT, offline=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert raw_contents(raw) == first


def test_a_wrong_revision_fails_saying_so(tmp_path):
    with local_hub() as (endpoint, requests, _):
        result = run_import(tmp_path, endpoint, "fedcba9876543210fedcba9876543210fedcba98")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert f"revision 'fedcba9876543210fedcba9876543210fedcba98' not found in dataset {REPO_ID}" in errors[0]
    assert "unreachable" not in errors[0] and "import.hub.revision" in errors[0]
    assert requests, "the import never asked the local hub"


def test_the_reachability_probe_uses_hf_endpoint(tmp_path):
    # Nothing listens on the discard port: the probe must try HF_ENDPOINT, not huggingface.co.
    result = run_import(tmp_path, "http://127.0.0.1:9", COMMIT)
    assert result.returncode == 1
    assert "unreachable at http://127.0.0.1:9" in result.stderr


@contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a stalled hub or proxy)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in held:
            connection.close()
        thread.join(timeout=5)


def test_a_hub_that_never_answers_fails_within_the_timeout(tmp_path):
    with silent_server() as endpoint:
        started = time.monotonic()
        result = run_import(tmp_path, endpoint, COMMIT, timeout_s=2)
        elapsed = time.monotonic() - started
    assert result.returncode == 1 and f"unreachable at {endpoint}" in result.stderr, result.stderr[-2000:]
    # Generous: the client's own retries would take minutes (60 s per attempt).
    assert elapsed < 20, elapsed
