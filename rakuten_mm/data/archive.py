"""Image archives: one uncompressed zip per split, read member by member."""

import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

# A fixed timestamp keeps archive bytes (and so DVC hashes) identical between runs.
FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
JPEG_EXTENSIONS = (".jpg", ".jpeg")


def canonical_image_name(name: str) -> str | None:
    """The challenge's spelling (".jpg") of a JPEG file name whatever its extension's case; None if not a JPEG."""
    path = PurePosixPath(name)
    # "._x.jpg" files are macOS resource forks that zips made on a Mac carry beside each photo.
    if path.suffix.lower() not in JPEG_EXTENSIONS or path.name.startswith("._"):
        return None
    return path.stem + ".jpg"


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
    """Map each JPEG's canonical file name to its member path, whatever folders the zip nests it in."""
    index = {}
    for info in archive.infolist():
        name = None if info.is_dir() else canonical_image_name(info.filename)
        if name is not None:
            index.setdefault(name, info.filename)
    return index


def read_member(archive: zipfile.ZipFile, member: str) -> bytes:
    """Return one member's bytes."""
    with archive.open(member) as handle:
        return handle.read()
