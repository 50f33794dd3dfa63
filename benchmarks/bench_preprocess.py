"""Benchmark image preprocessing: the project path against a naive loop and the decoder's ceiling.

For each data set (synthetic JPEGs, a given --archive, and the real sample photos when present)
it reports images/s of
  project      preprocess_archive(..., workers=W): scaled decode, crop, pad, resize, .npy memmap
  naive        one process: Image.open(...).convert("RGB").resize((S, S)) per image (on a prefix)
  decode-only  W processes that only decode every image at full size (Image.open(...).load())
and the ratios project/naive and project/decode-only. Every timing includes reading the members
from the zip and, for the parallel ones, starting the worker processes.

    python benchmarks/bench_preprocess.py [--n 2000] [--size 128] [--out results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

# The parent's progress bar would garble the table; tqdm reads this when it is imported.
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from rakuten_mm.data.archive import index_members_by_basename, read_member, write_stored_zip  # noqa: E402
from rakuten_mm.features.images import _plan_chunks, preprocess_archive  # noqa: E402

DEFAULT_REAL_DIR = REPO_ROOT.parent / "shared" / "rakuten-real-sample" / "image_train"
TARGET_RATE = 800.0
TARGET_VS_NAIVE = 2.5
TARGET_VS_DECODE = 0.7


def synthetic_jpeg(rng: np.random.Generator, side: int = 500) -> bytes:
    """A progressive JPEG of a few flat shapes on white, like a product shot."""
    image = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 5)):
        x0, y0 = (int(v) for v in rng.integers(20, side // 2, size=2))
        width, height = (int(v) for v in rng.integers(60, side // 2, size=2))
        x1, y1 = min(x0 + width, side - 10), min(y0 + height, side - 10)
        colour = tuple(int(c) for c in rng.integers(0, 230, size=3))
        shape = rng.integers(3)
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour, outline=(0, 0, 0), width=3)
        else:
            points = [tuple(int(v) for v in rng.integers(x0, x1, size=2)) for _ in range(5)]
            draw.polygon(points, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, progressive=True)
    return buffer.getvalue()


def build_synthetic_archive(path: Path, count: int, seed: int = 0) -> list[str]:
    """Zip `count` synthetic JPEGs named like the challenge's; return their names in order."""
    rng = np.random.default_rng(seed)
    names = [f"image_{100000 + i}_product_{200000 + i}.jpg" for i in range(count)]
    write_stored_zip(path, ((name, synthetic_jpeg(rng)) for name in names))
    return names


def build_real_archive(path: Path, real_dir: Path, repeat: int) -> list[str]:
    """Zip the real photos `repeat` times under distinct names; return the names in order."""
    photos = sorted(real_dir.glob("*.jpg"))
    names = [f"r{copy}_{photo.name}" for copy in range(repeat) for photo in photos]
    members = ((name, (real_dir / name.split("_", 1)[1]).read_bytes()) for name in names)
    write_stored_zip(path, members)
    return names


def archive_names(path: Path) -> list[str]:
    """The image names of an existing archive, in archive order."""
    with zipfile.ZipFile(path) as archive:
        return sorted(index_members_by_basename(archive))


def run_naive(zip_path: Path, names: list[str], size: int) -> None:
    """The straightforward loop: one process, full decode, plain resize."""
    output = np.empty((len(names), size, size, 3), dtype=np.uint8)
    with zipfile.ZipFile(zip_path) as archive:
        members = index_members_by_basename(archive)
        for row, name in enumerate(names):
            data = read_member(archive, members[name])
            output[row] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((size, size)))


# The decode-only worker's open archive, set once per process like the project's workers do.
_decode_archive: tuple[zipfile.ZipFile, dict[str, str]] | None = None


def _open_decode_archive(zip_path: str) -> None:
    """Decode-only pool initializer: open the zip and index it once per worker."""
    global _decode_archive
    archive = zipfile.ZipFile(zip_path)
    _decode_archive = (archive, index_members_by_basename(archive))


def _decode_chunk(names: list[str]) -> int:
    """Decode-only worker task: read and fully decode one chunk of members; return the count."""
    archive, members = _decode_archive
    for name in names:
        with Image.open(io.BytesIO(read_member(archive, members[name]))) as image:
            image.load()
    return len(names)


def run_decode_only(zip_path: Path, names: list[str], workers: int, chunk_size: int) -> None:
    """The decoder's own rate at full size, with the project's process count and chunking."""
    # The project's own chunk plan, so that only the per-image work differs between the two.
    chunks = [names[start:stop] for start, stop in _plan_chunks(len(names), workers, chunk_size)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, _open_decode_archive, (str(zip_path),)) as pool:
        sum(future.result() for future in as_completed([pool.submit(_decode_chunk, c) for c in chunks]))


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its reaped children (the pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call (CPU time suffers less when other jobs share the machine)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def bench_archive(label: str, zip_path: Path, names: list[str], args: argparse.Namespace, scratch: Path) -> dict:
    """Measure the three paths on one archive, interleaved round by round; the fastest round counts."""
    out_path = scratch / f"{label}.npy"
    # The naive loop has no fixed cost, so a prefix measures its rate and keeps the run short.
    naive_names = names[: args.naive_n]
    runs = {
        "project": (len(names), lambda: preprocess_archive(
            zip_path, names, out_path, args.size, workers=args.workers, chunk_size=args.chunk_size
        )),
        "naive": (len(naive_names), lambda: run_naive(zip_path, naive_names, args.size)),
        "decode_only": (len(names), lambda: run_decode_only(zip_path, names, args.workers, args.chunk_size)),
    }
    wall = {key: float("inf") for key in runs}
    cpu = dict(wall)
    for _ in range(args.rounds):
        for key, (_, run) in runs.items():
            elapsed, used = timed(run)
            wall[key], cpu[key] = min(wall[key], elapsed), min(cpu[key], used)
    out_path.unlink(missing_ok=True)
    rates = {key: count / wall[key] for key, (count, _) in runs.items()}
    return {
        "dataset": label,
        "images": len(names),
        "naive_images": len(naive_names),
        **{f"{key}_per_s": round(rate, 1) for key, rate in rates.items()},
        **{f"{key}_cpu_ms_per_image": round(1000 * cpu[key] / count, 2) for key, (count, _) in runs.items()},
        "project_vs_naive": round(rates["project"] / rates["naive"], 2),
        "project_vs_decode_only": round(rates["project"] / rates["decode_only"], 2),
    }


def markdown_table(results: list[dict]) -> str:
    """The results as a markdown table, with the targets in the header."""
    lines = [
        f"| dataset | images | project img/s (>= {TARGET_RATE:.0f}) | naive img/s | decode-only img/s "
        f"| project / naive (>= {TARGET_VS_NAIVE}) | project / decode-only (>= {TARGET_VS_DECODE}) "
        "| CPU ms/img project / naive / decode-only |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cpu = " / ".join(f"{r[f'{key}_cpu_ms_per_image']:.2f}" for key in ("project", "naive", "decode_only"))
        lines.append(
            f"| {r['dataset']} | {r['images']} | {r['project_per_s']:.0f} | {r['naive_per_s']:.0f} "
            f"| {r['decode_only_per_s']:.0f} | {r['project_vs_naive']:.2f} "
            f"| {r['project_vs_decode_only']:.2f} | {cpu} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, help="benchmark this zip instead of synthetic images")
    parser.add_argument("--n", type=int, default=2000, help="synthetic images to generate")
    parser.add_argument("--naive-n", type=int, default=400, help="images the (slow, overhead-free) naive loop runs on")
    parser.add_argument("--real-dir", type=Path, default=DEFAULT_REAL_DIR, help="folder of real JPEGs, if present")
    parser.add_argument("--real-repeat", type=int, default=4, help="copies of the real photos (amortises start-up)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2, help="runs per path; the fastest counts")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    return parser.parse_args()


def main() -> None:
    """Build the archives, run every path on each, print the table and optionally save JSON."""
    args = parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
        scratch = Path(tmp)
        if args.archive:
            datasets = [(args.archive.name, args.archive, archive_names(args.archive))]
        else:
            synthetic_zip = scratch / "synthetic.zip"
            datasets = [("synthetic", synthetic_zip, build_synthetic_archive(synthetic_zip, args.n))]
        if args.real_dir.is_dir():
            real_zip = scratch / "real.zip"
            datasets.append(("real", real_zip, build_real_archive(real_zip, args.real_dir, args.real_repeat)))
        for label, zip_path, names in datasets:
            results.append(bench_archive(label, zip_path, names, args, scratch))
            print(f"done: {label}", file=sys.stderr, flush=True)
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"size {args.size}, workers {args.workers}, cpus {os.cpu_count()}, best of {args.rounds} rounds, "
          f"load average at the end {load} (other processes skew wall-clock rates)\n")
    print(markdown_table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {"size": args.size, "workers": args.workers, "rounds": args.rounds},
                                        "load_average": os.getloadavg(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
