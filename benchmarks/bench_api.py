"""Benchmark POST /predict on a real server: latency at concurrency 1, throughput at concurrency 8.

Starts uvicorn on 127.0.0.1 (as `make serve` does) for each variant and sends a fixed number of
/predict requests, each a 500x500 JPEG and a title, then stops it:
  fast   the API as shipped: models traced once into TensorFlow graphs (ProductClassifier)
  naive  the same API calling Keras model.predict on every request, as the original
         Projet_Formation_MLOps_DataScientest_2025 service did (a benchmark-only subclass)
  http   the same API around a classifier whose preprocessing and inference cost nothing
         (benchmark-only): the HTTP path alone (auth, parsing, limits, logs, metrics, routing)
It reports p50/p95/p99 latency at concurrency 1, requests/s at concurrency 8, the fast/naive
ratios, and fails (exit 1) on any non-200 answer. Then, on the fast variant, the "abusive uploads"
row: few-KB PNGs declaring 40,000 x 1,000 and 1 x 40,000 pixels (refused, 422) and a 10,000 x 1,000
one (accepted, shrunk before padding), each with its answer time and the peak RSS growth of the
workers (VmHWM, reset through /proc/PID/clear_refs before each upload; Linux).
Results go to benchmarks/results/api.json and api.md (--out to change).

    python benchmarks/bench_api.py [--models models] [--requests 500] [--naive-requests 100]
                                   [--variants fast,naive,http] [--workers 2] [--image photo.jpg]
                                   [--out benchmarks/results/api.json]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import run_info  # noqa: E402

DEFAULT_REAL_DIR = REPO_ROOT.parent / "shared" / "rakuten-real-sample" / "image_train"
TITLE = "Piscine tubulaire ronde 3,05 m x 76 cm avec pompe de filtration"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "api.json"
# (name, width, height, with content): hostile uploads, and a wide one inside the limits.
ABUSIVE_PNGS = (("40000x1000 1-bit PNG", 40_000, 1_000, False), ("1x40000 1-bit PNG", 1, 40_000, False),
                ("10000x1000 1-bit PNG (accepted)", 10_000, 1_000, True))
TARGET_P50_MS = 6.0
TARGET_RPS = 250.0
STARTUP_TIMEOUT_S = 180
WARMUP_REQUESTS = 20


# --- the naive variant: only ever imported by the server this script starts ---

def naive_classifier_class():
    """ProductClassifier with Keras model.predict per call instead of the traced graphs."""
    from rakuten_mm.categories import CODES
    from rakuten_mm.models.predictor import ProductClassifier, blank_image_probabilities
    from rakuten_mm.models.training import sparse_batches

    class NaiveClassifier(ProductClassifier):
        """model.predict on every request: Keras builds a data pipeline and a step loop each time."""

        def predict_text(self, titles, descriptions, tfidf_rows=None):
            batches = sparse_batches(tfidf_rows, None, self.batch_size, shuffle_seed=None)
            return np.asarray(self.text_model.predict(batches, verbose=0), dtype=np.float32)

        def predict_image(self, images, has_image):
            probabilities = blank_image_probabilities(len(has_image), len(CODES))
            rows = np.flatnonzero(has_image)
            if len(rows):
                probabilities[rows] = self.image_model.predict(np.asarray(images[rows]), verbose=0)
            return probabilities

    return NaiveClassifier


class InstantClassifier:
    """ProductClassifier's serving interface at no cost: uniform probabilities, nothing decoded (http variant)."""

    def __init__(self, models_dir):
        self.probabilities = np.full(27, 1 / 27, dtype=np.float32)

    def prepare_product(self, designation, description, image_bytes, **limits):
        """The inputs' shape without looking at them."""
        return designation, description or "", np.zeros((8, 8, 3), np.uint8), bool(image_bytes)

    def predict_proba(self, titles, descriptions, images, has_image):
        """Uniform fused probabilities."""
        return {"fused": np.tile(self.probabilities, (len(titles), 1))}

    def warm_up(self):
        """Nothing to trace."""


def create_http_app():
    """uvicorn factory (--factory) for the http variant, configured from the environment."""
    from rakuten_mm.serving.main import create_app

    return create_app(classifier_factory=InstantClassifier)


def create_naive_app():
    """uvicorn factory (--factory) for the naive variant, configured from the environment."""
    from rakuten_mm.serving.main import create_app

    return create_app(classifier_factory=naive_classifier_class())


# --- inputs ---

def synthetic_jpeg(side: int = 500) -> bytes:
    """A product-like 500x500 photo: shapes on white, JPEG quality 90."""
    rng = np.random.default_rng(0)
    image = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = (int(v) for v in rng.integers(40, side // 2, size=2))
        x1, y1 = (int(v) for v in rng.integers(side // 2, side - 40, size=2))
        draw.rounded_rectangle((x0, y0, x1, y1), radius=20, fill=tuple(int(c) for c in rng.integers(0, 220, size=3)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def load_image(path: Path | None) -> tuple[bytes, str]:
    """The JPEG to send and a description of it: --image, else a real sample photo, else synthetic."""
    if path is None and DEFAULT_REAL_DIR.is_dir():
        path = next(iter(sorted(DEFAULT_REAL_DIR.glob("*.jpg"))), None)
    if path is None:
        return synthetic_jpeg(), "synthetic 500x500 JPEG"
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        return data, f"{path.name} ({image.width}x{image.height} {image.format}, {len(data)} bytes)"


def multipart_body(image: bytes, title: str) -> tuple[bytes, str]:
    """A ready-made multipart/form-data body with the title and the image, and its content type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="designation"\r\n\r\n{title}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode() + image + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def one_bit_png(width: int, height: int, content: bool) -> bytes:
    """A white 1-bit PNG, a few KB whatever its size; content adds a dark diagonal stroke."""
    image = Image.new("1", (width, height), 1)
    if content:
        ImageDraw.Draw(image).line((0, 0, width - 1, height - 1), fill=0, width=max(1, min(width, height) // 20))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


# --- the server ---

def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_bench_user(path: Path) -> tuple[str, str]:
    """A users file with one benchmark user and a random password."""
    from rakuten_mm.serving.security import hash_password
    from rakuten_mm.serving.users import User, write_users_file

    password = secrets.token_urlsafe(16)
    write_users_file(path, {"bench": User("bench", hash_password(password, 4))})
    return "bench", password


def server_command(variant: str, port: int, workers: int) -> list[str]:
    """The uvicorn command line of a variant (the fast one is exactly `make serve`'s)."""
    common = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log"]
    if variant == "fast":
        return [sys.executable, "-m", "uvicorn", "rakuten_mm.serving.main:app", *common]
    return [sys.executable, "-m", "uvicorn", f"bench_api:create_{variant}_app", "--factory",
            "--app-dir", str(Path(__file__).resolve().parent), *common]


class Server:
    """One uvicorn process tree for a variant, stopped on exit."""

    def __init__(self, variant: str, args: argparse.Namespace, workdir: Path):
        self.port = free_port()
        self.username, self.password = write_bench_user(workdir / "users.json")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RAKUTEN_API_SECRET_KEY": secrets.token_urlsafe(48),
               "RAKUTEN_API_MODELS_DIR": str(args.models.resolve()), "RAKUTEN_API_DVC_LOCK": str(args.dvc_lock.resolve()),
               "RAKUTEN_API_USERS_FILE": str(workdir / "users.json"), "RAKUTEN_API_LOG_DIR": str(workdir / "logs"),
               "RAKUTEN_API_PREDICT_RATE_LIMIT": "1000000/minute", "RAKUTEN_API_TF_THREADS": str(args.tf_threads),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.output = (workdir / f"{variant}.out").open("w")
        # Server output goes to a file: the per-request JSON log lines are not what is measured.
        self.process = subprocess.Popen(server_command(variant, self.port, args.workers), cwd=workdir, env=env,
                                        stdout=self.output, stderr=subprocess.STDOUT)

    def wait_until_up(self) -> None:
        """Poll /status until the models are loaded."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}; see {self.output.name}")
            try:
                status, body = request(self.port, "GET", "/status")
                if status == 200 and json.loads(body)["models_loaded"]:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the server did not start in time")

    def token(self) -> str:
        """A bearer token for the benchmark user."""
        form = f"username={self.username}&password={self.password}".encode()
        status, body = request(self.port, "POST", "/token", form,
                               {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise RuntimeError(f"/token answered {status}: {body[:200]!r}")
        return json.loads(body)["access_token"]

    def stop(self) -> None:
        """Terminate uvicorn (it stops its workers) and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()


def worker_pids(pid: int) -> list[int]:
    """The uvicorn worker processes of a server (itself when it runs one worker in-process)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    # With --workers N, uvicorn's supervisor forks N workers (and may run a resource tracker).
    return [int(child) for child in children] or [pid]


def memory_kb(pid: int, field: str) -> int:
    """A VmRSS/VmHWM line of /proc/PID/status, in kB."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])


def abusive_uploads(server: "Server", token: str) -> list[dict]:
    """Answer time and workers' peak RSS growth for each ABUSIVE_PNGS upload to /predict."""
    rows = []
    for name, width, height, content in ABUSIVE_PNGS:
        image = one_bit_png(width, height, content)
        body, content_type = multipart_body(image, TITLE)
        pids = worker_pids(server.process.pid)
        for pid in pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = {pid: memory_kb(pid, "VmRSS") for pid in pids}
        start = time.perf_counter()
        status, answer = request(server.port, "POST", "/predict", body,
                                 {"Authorization": f"Bearer {token}", "Content-Type": content_type})
        seconds = time.perf_counter() - start
        growth = max(memory_kb(pid, "VmHWM") - before[pid] for pid in pids) / 1024
        detail = json.loads(answer).get("detail") if status != 200 else "modalities: " + ",".join(
            json.loads(answer)["modalities"])
        rows.append({"upload": name, "bytes": len(image), "status": status, "seconds": round(seconds, 3),
                     "peak_rss_growth_mb": round(growth, 1), "answer": detail})
    return rows


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request on a fresh connection: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- the load ---

def open_connection(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with Nagle's algorithm off, as curl and browsers do."""
    # http.client sends the headers and a body over 2920 bytes in separate writes; with Nagle on,
    # the body's last segment can wait for the server's delayed ACK: 40 ms added to a request.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def send_requests(port: int, count: int, body: bytes, headers: dict, latencies: list, errors: list) -> None:
    """Send `count` /predict requests on one keep-alive connection, recording latency and failures."""
    connection = open_connection(port)
    try:
        for _ in range(count):
            start = time.perf_counter()
            connection.request("POST", "/predict", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            latencies.append(time.perf_counter() - start)
            if response.status != 200:
                errors.append(f"{response.status}: {payload[:200]!r}")
    finally:
        connection.close()


def run_load(port: int, total: int, concurrency: int, body: bytes, headers: dict) -> dict:
    """`total` requests split over `concurrency` threads: latency percentiles, throughput, errors."""
    latencies: list[float] = []
    errors: list[str] = []
    shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
    threads = [threading.Thread(target=send_requests, args=(port, share, body, headers, latencies, errors))
               for share in shares]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "first_error": errors[0] if errors else None, "seconds": round(elapsed, 3),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)},
            "mean_ms": round(float(ms.mean()), 2)}


def bench_variant(variant: str, count: int, args: argparse.Namespace, image: bytes, workdir: Path) -> dict:
    """Start the variant's server, warm it up, measure concurrency 1 then the given concurrency, stop it."""
    server = Server(variant, args, workdir)
    try:
        server.wait_until_up()
        body, content_type = multipart_body(image, TITLE)
        headers = {"Authorization": f"Bearer {server.token()}", "Content-Type": content_type}
        # Warm-up on every connection count, so that each worker has served requests before timing.
        run_load(server.port, WARMUP_REQUESTS, min(args.concurrency, WARMUP_REQUESTS), body, headers)
        serial = run_load(server.port, count, 1, body, headers)
        parallel = run_load(server.port, count, args.concurrency, body, headers)
        result = {"serial": serial, "parallel": parallel}
        if variant == "fast":
            result["abusive_uploads"] = abusive_uploads(server, headers["Authorization"].split()[1])
        return result
    finally:
        server.stop()


def print_report(results: dict, args: argparse.Namespace) -> None:
    """A side-by-side table and the target checks."""
    print(f"\nmachine: {results['machine']}\nimage: {results['image']}; workers={args.workers}, "
          f"tf_threads={args.tf_threads}\n")
    print(f"{'variant':8} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} | {'c':>2} {'req/s':>7} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for variant, result in results["variants"].items():
        s, p = result["serial"], result["parallel"]
        print(f"{variant:8} {s['requests']:>5} {s['p50_ms']:>8} {s['p95_ms']:>8} {s['p99_ms']:>8} | "
              f"{p['concurrency']:>2} {p['requests_per_s']:>7} {p['p50_ms']:>8} {p['p99_ms']:>8} "
              f"{s['errors'] + p['errors']:>6}")
    if "speedup" in results:
        print(f"\nfast vs naive: p50 latency {results['speedup']['p50_latency']}x lower, "
              f"throughput {results['speedup']['throughput']}x higher")
    for row in results["variants"].get("fast", {}).get("abusive_uploads", []):
        print(f"abusive upload {row['upload']} ({row['bytes']} bytes): {row['status']} in {row['seconds']} s, "
              f"peak RSS +{row['peak_rss_growth_mb']} MB ({row['answer']})")
    if "fast" in results["variants"]:
        fast = results["variants"]["fast"]
        print(f"targets: p50 <= {TARGET_P50_MS} ms: {fast['serial']['p50_ms']} ms "
              f"({'met' if fast['serial']['p50_ms'] <= TARGET_P50_MS else 'MISSED'}); "
              f">= {TARGET_RPS} req/s at c={args.concurrency}: {fast['parallel']['requests_per_s']} "
              f"({'met' if fast['parallel']['requests_per_s'] >= TARGET_RPS else 'MISSED'})")


def markdown_report(results: dict, args: argparse.Namespace) -> str:
    """The results as Markdown tables, for the README and docs/api.md to quote."""
    lines = [f"# API benchmark ({args.models})", "", f"`{results['command']}`", "",
             f"Commit {results['commit']}; machine: {results['machine']}; image: {results['image']}; workers={args.workers}, "
             f"tf_threads={args.tf_threads}.", "",
             "| variant | n | p50 ms (c=1) | p95 ms | p99 ms | req/s (c=%d) | errors |" % args.concurrency,
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for variant, result in results["variants"].items():
        s, p = result["serial"], result["parallel"]
        lines.append(f"| {variant} | {s['requests']} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | "
                     f"{p['requests_per_s']} | {s['errors'] + p['errors']} |")
    abusive = results["variants"].get("fast", {}).get("abusive_uploads", [])
    if abusive:
        lines += ["", "Abusive uploads (fast variant, one request each):", "",
                  "| upload | bytes | status | seconds | peak RSS growth MB | answer |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['upload']} | {r['bytes']} | {r['status']} | {r['seconds']} | {r['peak_rss_growth_mb']} | "
                  f"{r['answer']} |" for r in abusive]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"), help="models folder (default: models)")
    parser.add_argument("--dvc-lock", type=Path, default=None, help="dvc.lock (default: beside the models folder)")
    parser.add_argument("--image", type=Path, default=None, help="JPEG to send (default: a real sample photo)")
    parser.add_argument("--requests", type=int, default=500, help="requests per measurement, fast variant")
    parser.add_argument("--naive-requests", type=int, default=100, help="requests per measurement, naive variant")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default: 2)")
    parser.add_argument("--tf-threads", type=int, default=1, help="RAKUTEN_API_TF_THREADS of the server")
    parser.add_argument("--variants", default="fast,naive")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="results as JSON here, and as a Markdown table beside it (default: benchmarks/results/api.json)")
    args = parser.parse_args()
    args.dvc_lock = args.dvc_lock or args.models.resolve().parent / "dvc.lock"
    return args


def main() -> int:
    """Run every variant and report; exit 1 on any error answer."""
    args = parse_args()
    if not (args.models / "text" / "model.keras").is_file():
        print(f"no trained models in {args.models}: run `make run` (dvc repro) first, or pass --models",
              file=sys.stderr)
        return 2
    image, image_name = load_image(args.image)
    results = {"commit": run_info.commit(), "machine": run_info.machine(), "image": image_name, "title": TITLE, "variants": {}}
    counts = {"fast": args.requests, "naive": args.naive_requests, "http": args.requests}
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        for variant in args.variants.split(","):
            print(f"{variant}: {counts[variant]} requests at concurrency 1, then {args.concurrency} ...", flush=True)
            workdir = Path(tmp) / variant
            workdir.mkdir()
            results["variants"][variant] = bench_variant(variant, counts[variant], args, image, workdir)
    variants = results["variants"]
    if {"fast", "naive"} <= variants.keys():
        results["speedup"] = {
            "p50_latency": round(variants["naive"]["serial"]["p50_ms"] / variants["fast"]["serial"]["p50_ms"], 1),
            "throughput": round(variants["fast"]["parallel"]["requests_per_s"]
                                / variants["naive"]["parallel"]["requests_per_s"], 1)}
    print_report(results, args)
    results["command"] = " ".join(["python benchmarks/bench_api.py", *sys.argv[1:]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown_report(results, args))
    errors = sum(r["serial"]["errors"] + r["parallel"]["errors"] for r in variants.values())
    if errors:
        print(f"{errors} requests failed", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
