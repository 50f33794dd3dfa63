"""Image preprocessing shared by the pipeline stages and the serving API.

Every product image goes through the same steps, here and only here:
decode (DCT-scaled for JPEG) -> crop the white border -> pad to a white square -> resize.
"""

from __future__ import annotations

import io
import multiprocessing
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from rakuten_mm.data.archive import index_members_by_basename, read_member

STATUS_OK = 0
STATUS_MISSING = 1
STATUS_UNREADABLE = 2

WHITE = 255
# Pillow's BILINEAR widens its triangle kernel by the scale factor, so it is a proper
# antialiasing filter when shrinking; on the real photos it is within 0.2 dB PSNR of LANCZOS
# at a third of the cost (see benchmarks/bench_preprocess.py and the module tests).
RESAMPLE_FILTER = Image.Resampling.BILINEAR
# Only raster formats a product photo can plausibly come in; this keeps exotic Pillow
# plugins (EPS, PSD, ...) away from bytes uploaded to the serving API.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


class UnreadableImageError(ValueError):
    """Raised when bytes cannot be decoded into an image."""


def decode_jpeg_scaled(data: bytes, min_size: int) -> Image.Image:
    """Decode bytes to RGB, letting JPEG skip resolution down to the smallest scale >= min_size."""
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            if image.format == "JPEG":
                # Decodes at 1/2, 1/4 or 1/8 scale inside libjpeg, keeping both sides >= min_size.
                image.draft("RGB", (min_size, min_size))
            image.load()
            # Phone uploads to the API often store rotation in EXIF rather than in the pixels.
            ImageOps.exif_transpose(image, in_place=True)
            return _to_rgb_on_white(image)
    # Pillow plugins signal corrupt or truncated data with many exception types.
    except Exception as error:
        raise UnreadableImageError(f"cannot decode image ({len(data)} bytes): {error}") from error


def _to_rgb_on_white(image: Image.Image) -> Image.Image:
    """Convert to RGB, flattening any transparency onto white like the catalogue backgrounds."""
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    background = Image.new("RGBA", image.size, (WHITE, WHITE, WHITE, WHITE))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def _content_span(has_content: np.ndarray, margin: int) -> slice:
    """Slice from the first to the last True flag, widened by margin and clipped to the axis."""
    indices = np.flatnonzero(has_content)
    start = max(int(indices[0]) - margin, 0)
    stop = min(int(indices[-1]) + margin + 1, has_content.size)
    return slice(start, stop)


def crop_white_border(image: np.ndarray, white_threshold: int, margin: int) -> np.ndarray:
    """Crop the rows and columns whose pixels are all near-white, keeping `margin` pixels around."""
    height, width = image.shape[:2]
    # A pixel is content as soon as one channel is below the threshold; testing the raw
    # channels avoids a slow min() over the short last axis.
    dark = image < white_threshold
    row_has_content = dark.reshape(height, -1).any(axis=1)
    if not row_has_content.any():
        return image
    column_has_content = dark.any(axis=0)
    if column_has_content.ndim == 2:
        column_has_content = column_has_content.any(axis=1)
    rows = _content_span(row_has_content, margin)
    columns = _content_span(column_has_content, margin)
    return image[rows, columns]


def pad_to_square(image: np.ndarray, fill: int = WHITE) -> np.ndarray:
    """Center the image on a square canvas of `fill` so resizing keeps its aspect ratio."""
    height, width = image.shape[:2]
    if height == width:
        return image
    side = max(height, width)
    canvas = np.full((side, side) + image.shape[2:], fill, dtype=image.dtype)
    top = (side - height) // 2
    left = (side - width) // 2
    canvas[top : top + height, left : left + width] = image
    return canvas


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a square uint8 image to (size, size) with the project's resampling filter."""
    resized = Image.fromarray(image).resize((size, size), RESAMPLE_FILTER)
    return np.asarray(resized)


def preprocess_image_bytes(
    data: bytes, size: int, white_threshold: int = 240, margin: int = 2
) -> np.ndarray:
    """Turn encoded image bytes into the model's (size, size, 3) uint8 input."""
    decoded = np.asarray(decode_jpeg_scaled(data, size))
    cropped = crop_white_border(decoded, white_threshold, margin)
    return resize_square(pad_to_square(cropped, WHITE), size)


@dataclass(frozen=True)
class _ArchiveJob:
    """What every worker needs to fill its rows of the output array (picklable)."""

    zip_path: str
    out_path: str
    size: int
    white_threshold: int
    margin: int


class _ArchiveRowWriter:
    """Reads members straight from the zip and writes preprocessed rows into the .npy memmap."""

    def __init__(self, job: _ArchiveJob):
        self.job = job
        self.archive = zipfile.ZipFile(job.zip_path)
        self.members = index_members_by_basename(self.archive)
        self.output = np.load(job.out_path, mmap_mode="r+")

    def write_rows(self, start: int, names: list[str | None]) -> tuple[int, np.ndarray]:
        """Fill rows start.. start+len(names); return start and their status codes."""
        statuses = np.empty(len(names), dtype=np.uint8)
        for offset, name in enumerate(names):
            row = start + offset
            pixels, statuses[offset] = self._preprocess_name(name)
            self.output[row] = WHITE if pixels is None else pixels
        return start, statuses

    def _preprocess_name(self, name: str | None) -> tuple[np.ndarray | None, int]:
        """Return (pixels or None, status) for one requested image name."""
        member = None if name is None else self.members.get(PurePosixPath(name).name)
        if member is None:
            return None, STATUS_MISSING
        try:
            data = read_member(self.archive, member)
        # A damaged member (bad CRC, short read) is a bad image, not a reason to stop the split.
        except (zipfile.BadZipFile, OSError, EOFError):
            return None, STATUS_UNREADABLE
        job = self.job
        try:
            return preprocess_image_bytes(data, job.size, job.white_threshold, job.margin), STATUS_OK
        except UnreadableImageError:
            return None, STATUS_UNREADABLE

    def close(self) -> None:
        """Release the zip handle and the memmap (written pages already sit in the OS cache)."""
        self.archive.close()
        del self.output


# One writer per worker process, created by the pool initializer.
_worker_writer: _ArchiveRowWriter | None = None


def _init_worker(job: _ArchiveJob) -> None:
    """Pool initializer: open the archive and the output once per worker."""
    global _worker_writer
    _worker_writer = _ArchiveRowWriter(job)


def _write_rows_in_worker(task: tuple[int, list[str | None]]) -> tuple[int, np.ndarray]:
    """Pool task: preprocess one chunk with this worker's writer."""
    assert _worker_writer is not None, "worker used before _init_worker"
    return _worker_writer.write_rows(*task)


def _run_chunks(job: _ArchiveJob, tasks: list, workers: int):
    """Yield (start, statuses) per chunk, in-process for one worker or from a process pool."""
    if workers == 1 or len(tasks) <= 1:
        writer = _ArchiveRowWriter(job)
        try:
            for task in tasks:
                yield writer.write_rows(*task)
        finally:
            writer.close()
        return
    # spawn, not fork: callers (training stages, the API) may already run threads, e.g. TensorFlow's.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(tasks)), _init_worker, (job,)) as pool:
        yield from pool.imap_unordered(_write_rows_in_worker, tasks)
        pool.close()
        pool.join()


def preprocess_archive(
    zip_path: str | Path,
    names: list[str | None],
    out_path: str | Path,
    size: int,
    white_threshold: int = 240,
    margin: int = 2,
    workers: int = 2,
    chunk_size: int = 256,
) -> np.ndarray:
    """Preprocess names[i] from the zip into row i of a (N, size, size, 3) uint8 .npy; return statuses."""
    if workers < 1 or chunk_size < 1:
        raise ValueError(f"workers and chunk_size must be >= 1, got {workers} and {chunk_size}")
    names = list(names)
    # Preallocated on disk: the split never has to fit in RAM, and workers write their own rows.
    output = np.lib.format.open_memmap(
        out_path, mode="w+", dtype=np.uint8, shape=(len(names), size, size, 3)
    )
    output.flush()
    del output
    job = _ArchiveJob(str(zip_path), str(out_path), size, white_threshold, margin)
    tasks = [(start, names[start : start + chunk_size]) for start in range(0, len(names), chunk_size)]
    statuses = np.empty(len(names), dtype=np.uint8)
    with tqdm(total=len(names), unit="img", desc=f"images {Path(zip_path).name}") as progress:
        for start, chunk_statuses in _run_chunks(job, tasks, workers):
            statuses[start : start + len(chunk_statuses)] = chunk_statuses
            progress.update(len(chunk_statuses))
    return statuses
