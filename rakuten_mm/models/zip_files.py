"""Model archives rewritten with fixed member timestamps, so that DVC hashes only change with content."""

import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from rakuten_mm.data.archive import FIXED_ZIP_TIME


def keep_member(name: str, data: bytes) -> bytes:
    """The member's bytes unchanged."""
    return data


# Keras weight files (float arrays) deflate by about 8% in 2.5 s for the 49 MB of the tf-idf head:
# they are stored as they are, as Keras itself does; the rest (JSON, skops arrays) is deflated.
STORED_SUFFIXES = (".h5",)


def write_fixed_zip(target: str | Path, members: Iterable[tuple[str, bytes]]) -> None:
    """Write (name, bytes) pairs into a zip whose members all carry the same timestamp."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as fixed:
        for name, data in members:
            member = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            member.compress_type = zipfile.ZIP_STORED if name.endswith(STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
            fixed.writestr(member, data)


def rewrite_zip(source: str | Path, target: str | Path,
                rewrite_member: Callable[[str, bytes], bytes] = keep_member) -> None:
    """Copy a zip member by member with a fixed timestamp, passing each member through rewrite_member."""
    with zipfile.ZipFile(source) as original:
        members = [(info.filename, rewrite_member(info.filename, original.read(info))) for info in original.infolist()]
    write_fixed_zip(target, members)
