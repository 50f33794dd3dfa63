"""The rollout state file: which models folder is current, which is the candidate and its share, and the previous one.

    {"current": "models", "candidate": "/srv/exp-42/models", "candidate_share": 0.1,
     "previous": null, "updated_at": "2025-06-01T10:00:00+00:00"}

Relative folders are relative to the API's working directory, like RAKUTEN_API_MODELS_DIR. No file
means: serve RAKUTEN_API_MODELS_DIR alone. The rollout command edits the file (atomically, under a
lock); every API worker reloads when it sees the file change.
"""

import fcntl
import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from rakuten_mm.serving.atomic import replace_file


class RolloutError(ValueError):
    """The rollout file is unreadable, or a rollout step makes no sense in the present state."""


@dataclass(frozen=True)
class RolloutState:
    """Folders served (current, candidate with its share of products) and the one to roll back to."""

    current: str
    candidate: str | None = None
    candidate_share: float = 0.0
    previous: str | None = None
    updated_at: str | None = None

    def __post_init__(self):
        """Refuse states the API could not serve."""
        if not isinstance(self.current, str) or not self.current:
            raise RolloutError("'current' must name a models folder")
        if not isinstance(self.candidate_share, int | float) or not 0.0 <= self.candidate_share <= 1.0:
            raise RolloutError(f"candidate_share must be between 0 and 1, not {self.candidate_share!r}")
        if self.candidate is None and self.candidate_share:
            raise RolloutError("candidate_share is above 0 but no candidate is named")


def file_fingerprint(path: Path) -> tuple | None:
    """What changes whenever the file is rewritten or touched; None when it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def read_state(path: Path, default_current: Path) -> RolloutState:
    """The state in the file; without a file, default_current served alone."""
    if not path.is_file():
        return RolloutState(str(default_current))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RolloutState(**data)
    except (ValueError, TypeError) as error:
        raise RolloutError(f"cannot read rollout file {path}: {error}") from error


def write_state(path: Path, state: RolloutState) -> RolloutState:
    """Write the state, stamped with the time, in place of the file's."""
    state = replace(state, updated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    replace_file(path, json.dumps(asdict(state), indent=2) + "\n")
    return state


@contextmanager
def locked(path: Path):
    """Hold an exclusive lock beside the file, so that two edits never interleave their read and write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def edit_state(path: Path, default_current: Path,
               change: Callable[[RolloutState], RolloutState]) -> tuple[RolloutState, RolloutState]:
    """Apply change to the file's state under the lock; return (before, after)."""
    with locked(path):
        before = read_state(path, default_current)
        after = write_state(path, change(before))
    return before, after


def restore_state(path: Path, state: RolloutState) -> None:
    """Write back an earlier state (a rollout step the API could not load is undone)."""
    with locked(path):
        write_state(path, state)


def touch_or_create(path: Path, default_current: Path) -> tuple[tuple | None, tuple | None]:
    """Change the file's fingerprint so that every worker reloads; the fingerprints (before, after).

    The same text goes to a new file (a new inode: a change even within the file system's timestamp
    granularity); without a file, the default state is written.
    """
    with locked(path):
        before = file_fingerprint(path)
        if before is not None:
            replace_file(path, path.read_text(encoding="utf-8"))
        else:
            write_state(path, RolloutState(str(default_current)))
        return before, file_fingerprint(path)


def with_candidate(state: RolloutState, folder: str, share: float) -> RolloutState:
    """Serve folder to `share` of the products beside the current models."""
    return replace(state, candidate=folder, candidate_share=share)


def without_candidate(state: RolloutState) -> RolloutState:
    """Stop the candidate: every product goes to the current models again."""
    if state.candidate is None:
        raise RolloutError("there is no candidate to drop")
    return replace(state, candidate=None, candidate_share=0.0)


def promoted(state: RolloutState) -> RolloutState:
    """The candidate becomes current for every product; the current one is kept for rollback."""
    if state.candidate is None:
        raise RolloutError("there is no candidate to promote: set one with set-candidate first")
    return RolloutState(current=state.candidate, previous=state.current)


def rolled_back(state: RolloutState) -> RolloutState:
    """The previous models become current again, and any candidate is stopped."""
    if state.previous is None:
        hint = " (to stop the candidate, use drop-candidate)" if state.candidate else ""
        raise RolloutError(f"there is no previous model to roll back to{hint}")
    return RolloutState(current=state.previous)
