"""Image preprocessing shared by the pipeline stages and the serving API.

Every product image goes through the same steps, here and only here:
decode (DCT-scaled for JPEG, without the last progressive scan when it cannot matter at that
scale) -> shrink -> crop the white border -> pad to a white square -> resize.
Images whose header declares too many pixels or too extreme an aspect ratio are refused before any
pixel is decoded, and a large decoded image is shrunk before its square canvas is made, so no image
costs more than its decoded canvas however large or elongated it claims to be.
preprocess_archive runs in spawned processes when workers > 1, so a script calling it must
keep its entry point under `if __name__ == "__main__":` (the stages do).
"""

from __future__ import annotations

import io
import multiprocessing
import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from rakuten_mm.data.archive import index_members_by_basename, read_member

STATUS_OK = 0
STATUS_MISSING = 1
STATUS_UNREADABLE = 2

WHITE = 255
# Pillow widens every kernel by the shrink factor, so all its filters but NEAREST antialias.
# HAMMING costs the same as BILINEAR (same support) yet is sharper: on the real photos,
# half-scale decode + HAMMING is the closest to a full-resolution area average (39 dB PSNR vs
# 36 for BILINEAR, 38 for BICUBIC, 37 for LANCZOS), and BICUBIC/LANCZOS cost 2-3x as much.
RESAMPLE_FILTER = Image.Resampling.HAMMING
# The raster formats a product photo comes in, for the pipeline and the API alike; this keeps
# exotic Pillow plugins (EPS, PSD, ...) away from bytes uploaded to the serving API.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
# Refusal limits shared by make_dataset and the API (whose settings default to them): a header
# declaring more pixels (decompression bombs), or a longest side more than this many times the
# shortest (a 40,000 x 1,000 image is 97.5 % padding once squared), makes the image unreadable.
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_ASPECT_RATIO = 10.0
# A spawned worker imports the stage's modules before its first image (1-2 s): fewer images than
# this per worker are preprocessed faster in the calling process (~1.2 ms a real photo).
MIN_IMAGES_PER_WORKER = 1500
# A decoded image is box-averaged by an integer factor while its longest side stays at least this
# many times the output size: the square canvas is then under (2 x 8 x size)² pixels (3 MB at 64 px)
# and the result differs from the unshrunk one by ~1.5 grey levels on average (JPEG's 1/4-scale draft
# decode alone differs by ~4.4). Catalogue photos (500 x 500 JPEGs, decoded at 1/4 scale for 64 px)
# are below the threshold and are not touched.
WORK_SIDE_FACTOR = 8
# Modes Image.reduce takes; others (1-bit, palette, 16-bit) are converted first.
REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F")
# At a DCT scale of 1/4 or less, libjpeg rebuilds each 8 x 8 block from its 2 x 2 (1/8: 1) lowest
# coefficients, zigzag indices 0 to 4. The standard progressive script (libjpeg's, used by every
# photo of the real sample and by the synthetic data) sends the luminance AC coefficients in scans
# that either add a band (1-5, 6-63) or refine the bits of 1-63. Without the refinements and the
# bands past index 4, the rest decodes to the same coefficients at a coarser precision: 70% of the
# entropy-coded bytes, the bulk of a progressive decode, are skipped. At 1/8 scale the pixels are
# the same; at 1/4 they move by 1.7 grey levels on average at 64 px (real sample; README).
MIN_SCALE_WITHOUT_REFINEMENTS = 4
HIGHEST_COEFFICIENT_READ = 4
# In entropy-coded data 0xFF is followed by 0x00 (stuffing) or RSTn: anything else is a marker (the
# last 0xFF of a run of fill bytes starts it; `\xff+` instead would make the search 10x slower).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOF2, _SOS, _EOI = 0xC2, 0xDA, 0xD9
_MAX_JPEG_SEGMENTS = 256


class UnreadableImageError(ValueError):
    """Raised when bytes cannot be decoded into an image."""


class UnsupportedImageFormatError(UnreadableImageError):
    """Raised when bytes are not an image in one of the accepted formats at all."""


class ImageTooLargeError(UnreadableImageError):
    """Raised when an image declares more pixels than allowed (a decompression bomb guard)."""


class ImageAspectRatioError(UnreadableImageError):
    """Raised when an image's longest side is too many times its shortest (a square canvas bomb guard)."""


def _open_image(data: bytes, formats: tuple[str, ...]) -> Image.Image:
    """Open bytes lazily (header only) with the given decoders, sorting out unsupported data."""
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"image too large: {error}") from error
    except UnidentifiedImageError as error:
        raise UnsupportedImageFormatError(
            f"not a {'/'.join(formats)} image ({len(data)} bytes)"
        ) from error


def check_pixel_count(width: int, height: int, max_pixels: int | None) -> None:
    """Raise ImageTooLargeError when width x height is over max_pixels (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )


def check_aspect_ratio(width: int, height: int, max_ratio: float | None) -> None:
    """Raise ImageAspectRatioError when the longest side is over max_ratio times the shortest (None: no limit)."""
    if max_ratio is not None and max(width, height) > max_ratio * max(min(width, height), 1):
        raise ImageAspectRatioError(
            f"image is {width}x{height}: its aspect ratio {max(width, height) / max(min(width, height), 1):.1f}:1 "
            f"is over the limit of {max_ratio:g}:1"
        )


def shrink_for_work(image: Image.Image, size: int) -> Image.Image:
    """Box-average a large decoded image by an integer factor, keeping its longest side >= WORK_SIDE_FACTOR x size."""
    factor = max(image.size) // (WORK_SIDE_FACTOR * size)
    if factor < 2:
        return image
    if image.mode == "1":
        image = image.convert("L")  # same memory (Pillow keeps one byte per 1-bit pixel)
    elif image.mode not in REDUCIBLE_MODES:
        image = _to_rgb_on_white(image)
    return image.reduce(factor)


def _progressive_jpeg_layout(data: bytes) -> tuple[bytes, list[tuple[int, int]]] | None:
    """A whole progressive JPEG's frame header (SOF2 segment) and each scan's (start, end) bytes; None otherwise."""
    if not data.startswith(b"\xff\xd8"):
        return None  # not a JPEG (PNG, WebP...): never scanned for markers
    frame, starts, ends, position = None, [], [], 2
    for _ in range(_MAX_JPEG_SEGMENTS):
        match = _JPEG_MARKER.search(data, position)
        if match is None:
            return None  # truncated: left for the decoder to refuse, as before
        start, marker = match.start(), data[match.start() + 1]
        if len(ends) < len(starts):
            ends.append(start)  # a scan's entropy-coded data runs up to the next marker (DHT, SOS, EOI...)
        if marker == _EOI:
            return (frame, list(zip(starts, ends))) if frame is not None and len(frame) >= 11 and starts else None
        end = start + 2 + int.from_bytes(data[start + 2:start + 4], "big")
        if marker == _SOF2:
            frame = data[start:end]
        elif marker == _SOS:
            starts.append(start)
        position = end
    return None


def _scan_parameters(data: bytes, start: int) -> tuple[bytes, int, int]:
    """A scan header's component ids, first coefficient (Ss) and successive-approximation high bit (Ah)."""
    count = data[start + 4]
    spectral = start + 5 + 2 * count
    return data[start + 5:spectral:2], data[spectral], data[spectral + 2] >> 4


def _dct_scale(width: int, height: int, min_size: int) -> int:
    """The DCT scale Image.draft picks: the largest of 8, 4, 2, 1 keeping both sides >= min_size."""
    fits = min(width // min_size, height // min_size)
    return next(scale for scale in (8, 4, 2, 1) if fits >= scale or scale == 1)


def without_unread_luminance_scans(data: bytes, min_size: int) -> bytes:
    """A progressive JPEG decoded at 1/4 scale or less without its luminance AC refinements and unread bands."""
    # Anything else (baseline JPEG, a larger scale, a damaged file) is returned as is.
    layout = _progressive_jpeg_layout(data)
    if layout is None or min_size < 1:
        return data
    frame, scans = layout
    height, width = int.from_bytes(frame[5:7], "big"), int.from_bytes(frame[7:9], "big")
    if _dct_scale(width, height, min_size) < MIN_SCALE_WITHOUT_REFINEMENTS:
        return data
    luminance = frame[10:11]
    dropped = []
    for start, end in scans:
        components, first, high_bit = _scan_parameters(data, start)
        if components == luminance and first >= 1 and (high_bit > 0 or first > HIGHEST_COEFFICIENT_READ):
            dropped.append((start, end))
    if not dropped or len(dropped) == len(scans):
        return data
    kept, position = [], 0
    for start, end in dropped:  # the segments between scans (Huffman tables of the next one) stay
        kept.append(data[position:start])
        position = end
    return b"".join(kept) + data[position:]


def decode_jpeg_scaled(
    data: bytes,
    min_size: int,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: tuple[str, ...] = ACCEPTED_FORMATS,
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
) -> Image.Image:
    """Decode bytes to RGB, letting JPEG skip resolution down to the smallest scale >= min_size, then shrink."""
    # max_pixels and max_aspect_ratio refuse an image by the size its header declares, before any
    # pixel is decoded: a few kilobytes of PNG can declare a 50,000 x 50,000 canvas (a decompression
    # bomb) or a 40,000 x 1 strip. formats limits the decoders tried; bytes none of them recognise
    # are UnsupportedImageFormatError. The result's longest side is below 2 x WORK_SIDE_FACTOR x
    # min_size whenever the decoded image was larger.
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    try:
        with _open_image(without_unread_luminance_scans(data, min_size), formats) as image:
            check_pixel_count(*image.size, max_pixels)
            check_aspect_ratio(*image.size, max_aspect_ratio)
            if image.format == "JPEG":
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale: Pillow takes the smallest whose
                # exact size keeps both sides >= min_size (so output is never below min_size).
                image.draft("RGB", (min_size, min_size))
            image.load()
            # Phone uploads to the API often store rotation in EXIF rather than in the pixels.
            ImageOps.exif_transpose(image, in_place=True)
            # Shrunk in its own mode, before any RGB copy, border mask or square canvas is made.
            return _to_rgb_on_white(shrink_for_work(image, min_size))
    except UnreadableImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"image too large: {error}") from error
    # Pillow plugins signal corrupt or truncated data with many exception types.
    except Exception as error:
        raise UnreadableImageError(f"cannot decode image ({len(data)} bytes): {error}") from error


def _to_rgb_on_white(image: Image.Image) -> Image.Image:
    """Convert to RGB, flattening any transparency onto white like the catalogue backgrounds."""
    if image.mode.startswith("I"):
        # 16-bit greyscale PNGs: Pillow's convert() would clip them to white instead of scaling.
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if not has_alpha:
        return image if image.mode == "RGB" else image.convert("RGB")
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
    return np.array(resized)  # a writable copy; np.asarray would hand out a read-only view


def preprocess_image_bytes(
    data: bytes,
    size: int,
    white_threshold: int = 240,
    margin: int = 2,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: tuple[str, ...] = ACCEPTED_FORMATS,
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
) -> np.ndarray:
    """Turn encoded image bytes into the model's (size, size, 3) uint8 input."""
    # max_pixels, formats and max_aspect_ratio only decide which images are refused (see
    # decode_jpeg_scaled); an accepted image goes through exactly the same steps whatever their values.
    decoded = np.asarray(decode_jpeg_scaled(data, size, max_pixels, formats, max_aspect_ratio))
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
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO


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
            pixels = preprocess_image_bytes(data, job.size, job.white_threshold, job.margin, job.max_pixels,
                                            max_aspect_ratio=job.max_aspect_ratio)
            return pixels, STATUS_OK
        except UnreadableImageError:
            return None, STATUS_UNREADABLE

    def close(self) -> None:
        """Release the zip handle and the memmap (written pages already sit in the OS cache)."""
        self.archive.close()
        del self.output


# This worker process's writer, or the error that kept the initializer from opening one.
_worker_writer: _ArchiveRowWriter | Exception | None = None


def _init_worker(job: _ArchiveJob) -> None:
    """Pool initializer: open the archive and the output once per worker."""
    global _worker_writer
    try:
        _worker_writer = _ArchiveRowWriter(job)
    # Kept for the first task to raise, so the caller gets the real error, not a broken pool.
    except Exception as error:
        _worker_writer = error


def _write_rows_in_worker(task: tuple[int, list[str | None]]) -> tuple[int, np.ndarray]:
    """Pool task: preprocess one chunk with this worker's writer."""
    if not isinstance(_worker_writer, _ArchiveRowWriter):
        raise RuntimeError(f"image worker could not start: {_worker_writer!r}") from _worker_writer
    return _worker_writer.write_rows(*task)


def _run_chunks(job: _ArchiveJob, tasks: list, workers: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start, statuses) per chunk as it finishes, in-process or from a process pool."""
    if workers == 1 or len(tasks) == 1:
        writer = _ArchiveRowWriter(job)
        try:
            for task in tasks:
                yield writer.write_rows(*task)
        finally:
            writer.close()
        return
    # spawn, not fork: callers (training stages, the API) may already run threads, e.g. TensorFlow's.
    # An executor, unlike multiprocessing.Pool, fails instead of hanging if a worker dies.
    pool = ProcessPoolExecutor(
        min(workers, len(tasks)), multiprocessing.get_context("spawn"), _init_worker, (job,)
    )
    try:
        futures = [pool.submit(_write_rows_in_worker, task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _plan_chunks(count: int, workers: int, chunk_size: int) -> list[tuple[int, int]]:
    """(start, stop) row ranges of at most chunk_size rows, small enough to keep workers busy."""
    if workers > 1:
        # About 16 chunks per worker, so the last chunk leaves little idle time at the end.
        chunk_size = min(chunk_size, max(16, -(-count // (workers * 16))))
    return [(start, min(start + chunk_size, count)) for start in range(0, count, chunk_size)]


def _check_archive(zip_path: str | Path) -> None:
    """Fail early and clearly when the archive is absent or not a zip."""
    if not Path(zip_path).is_file():
        raise FileNotFoundError(f"image archive not found: {zip_path}")
    if not zipfile.is_zipfile(zip_path):
        raise ValueError(f"not a zip archive: {zip_path}")


def preprocess_archive(
    zip_path: str | Path,
    names: list[str | None],
    out_path: str | Path,
    size: int,
    white_threshold: int = 240,
    margin: int = 2,
    workers: int = 2,
    chunk_size: int = 256,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
) -> np.ndarray:
    """Preprocess names[i] from the zip into row i of a (N, size, size, 3) uint8 .npy; return statuses."""
    # An image the API would refuse (format, pixel count, aspect ratio) is STATUS_UNREADABLE here.
    if workers < 1 or chunk_size < 1:
        raise ValueError(f"workers and chunk_size must be >= 1, got {workers} and {chunk_size}")
    names = list(names)
    workers = max(1, min(workers, len(names) // MIN_IMAGES_PER_WORKER))
    if names:
        _check_archive(zip_path)  # an empty split may legitimately have no archive at all
    # Preallocated on disk: the split never has to fit in RAM, and workers write their own rows.
    output = np.lib.format.open_memmap(
        out_path, mode="w+", dtype=np.uint8, shape=(len(names), size, size, 3)
    )
    output.flush()
    del output
    job = _ArchiveJob(str(zip_path), str(out_path), size, white_threshold, margin, max_pixels, max_aspect_ratio)
    tasks = [(start, names[start:stop]) for start, stop in _plan_chunks(len(names), workers, chunk_size)]
    statuses = np.empty(len(names), dtype=np.uint8)
    if not tasks:
        return statuses
    with tqdm(total=len(names), unit="img", desc=f"images {Path(zip_path).name}") as progress:
        for start, chunk_statuses in _run_chunks(job, tasks, workers):
            statuses[start : start + len(chunk_statuses)] = chunk_statuses
            progress.update(len(chunk_statuses))
    return statuses
