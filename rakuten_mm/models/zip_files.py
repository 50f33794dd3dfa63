"""Model archives rewritten with fixed member timestamps, so that DVC hashes only change with content."""

import zipfile
from collections.abc import Callable
from pathlib import Path

from rakuten_mm.data.archive import FIXED_ZIP_TIME


def keep_member(name: str, data: bytes) -> bytes:
    """The member's bytes unchanged."""
    return data


def rewrite_zip(source: str | Path, target: str | Path,
                rewrite_member: Callable[[str, bytes], bytes] = keep_member) -> None:
    """Copy a zip member by member with a fixed timestamp, passing each member through rewrite_member."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as fixed:
        for info in original.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            fixed.writestr(member, rewrite_member(info.filename, original.read(info)))
