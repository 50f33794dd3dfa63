"""Image archives: one uncompressed zip per split, read member by member."""

import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

# A fixed timestamp keeps archive bytes (and so DVC hashes) identical between runs.
FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def write_stored_zip(path: str | Path, members: Iterable[tuple[str, bytes]]) -> int:
    """Write (name, bytes) pairs into an uncompressed zip in the given order; return the count."""
    count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
            count += 1
    return count


def index_members_by_basename(archive: zipfile.ZipFile) -> dict[str, str]:
    """Map each JPEG's file name to its member path, whatever folders the zip nests it in."""
    index = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        base = PurePosixPath(info.filename).name
        if base.lower().endswith((".jpg", ".jpeg")) and not base.startswith("._"):
            index.setdefault(base, info.filename)
    return index


def read_member(archive: zipfile.ZipFile, member: str) -> bytes:
    """Return one member's bytes."""
    with archive.open(member) as handle:
        return handle.read()
