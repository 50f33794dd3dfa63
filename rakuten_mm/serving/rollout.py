"""A/B rollout: the state file naming the served models folders, its changes, and the command that makes them.

    python -m rakuten_mm.serving.rollout status
    python -m rakuten_mm.serving.rollout set-candidate /srv/exp-42/models --share 0.1
    python -m rakuten_mm.serving.rollout promote          # candidate -> current, current kept as previous
    python -m rakuten_mm.serving.rollout rollback         # previous -> current (and no candidate)
    python -m rakuten_mm.serving.rollout drop-candidate   # stop the candidate, keep the current model

The file (RAKUTEN_API_ROLLOUT_FILE):

    {"current": "models", "candidate": "/srv/exp-42/models", "candidate_share": 0.1,
     "previous": null, "updated_at": "2025-06-01T10:00:00+00:00"}

Relative folders are relative to the API's working directory, like RAKUTEN_API_MODELS_DIR; no file
means RAKUTEN_API_MODELS_DIR alone. Every change goes through `roll_out`: edit the file (atomically,
under a lock), load what it names, and put the file back when that cannot be loaded. The command
loads through the running API (POST /admin/reload, as the admin user RAKUTEN_ROLLOUT_USER with
RAKUTEN_ROLLOUT_PASSWORD); POST /admin/rollout/{promote,rollback} loads in the API itself. Without
a user, the API's workers notice the file change within RAKUTEN_API_ROLLOUT_CHECK_SECONDS.
"""

import argparse
import fcntl
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from rakuten_mm.jsonfiles import file_fingerprint, replace_file
from rakuten_mm.serving.config import RolloutClientSettings, Settings
from rakuten_mm.serving.versions import check_models_dir, files_outs, identify_models, same_folder

Loaded = TypeVar("Loaded")


class ReloadError(RuntimeError):
    """The rollout file or a models folder it names could not be loaded; the previous models are still served."""


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


# The changes that take no argument, by the name the command line and /admin/rollout/{action} use.
ACTIONS: dict[str, Callable[[RolloutState], RolloutState]] = {
    "promote": promoted, "rollback": rolled_back, "drop-candidate": without_candidate}


def roll_out(path: Path, default_current: Path, change: Callable[[RolloutState], RolloutState],
             load: Callable[[RolloutState], Loaded]) -> Loaded:
    """The one rollout action: edit the file, load what it names, put the file back if that fails (ReloadError).

    RolloutError when the change makes no sense in the present state (nothing to promote...).
    """
    before, after = edit_state(path, default_current, change)
    try:
        return load(after)
    except ReloadError:
        restore_state(path, before)
        raise


# --- the command line ---

class ApiError(RuntimeError):
    """The API answered with an error status; status is None when it could not be reached."""

    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status


def call_api(method: str, url: str, timeout: float, form: dict | None = None, token: str | None = None) -> dict:
    """One JSON request to the API; ApiError for an error answer or no answer."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail).get("detail", detail)
        except (ValueError, AttributeError):
            pass
        raise ApiError(f"{method} {url} answered {error.code}: {detail}", error.code) from error
    except (urllib.error.URLError, OSError) as error:
        raise ApiError(f"cannot reach the API at {url}: {error}", None) from error


def request_reload(client: RolloutClientSettings, password: str) -> dict:
    """Log in as the admin user and ask the API to load what the rollout file names."""
    base = client.api_url.rstrip("/")
    token = call_api("POST", f"{base}/token", client.timeout_seconds,
                     form={"username": client.user, "password": password})["access_token"]
    # changed_only: models already loaded (e.g. a candidate being promoted) are not loaded again.
    return call_api("POST", f"{base}/admin/reload?changed_only=true", client.timeout_seconds, token=token)


def describe_folder(folder: str | None, settings: Settings) -> str:
    """A folder and its model version, for the status output."""
    if folder is None:
        return "-"
    path = Path(folder)
    try:
        check_models_dir(path)
        version = identify_models(path, settings.models_dir, settings.dvc_lock)
    except OSError as error:
        return f"{folder} (unusable: {error})"
    return f"{folder} (version {version.version}, from {version.source})"


def check_candidate(folder: Path, current: Path, settings: Settings) -> None:
    """Refuse a candidate that is missing a file, or that holds the same models as the current folder."""
    check_models_dir(folder)
    if same_folder(folder, current):
        raise RolloutError(f"{folder} is the current models folder")
    candidate_version = identify_models(folder, settings.models_dir, settings.dvc_lock).version
    if candidate_version == identify_models(current, settings.models_dir, settings.dvc_lock).version:
        raise RolloutError(f"{folder} has the current version {candidate_version} (a dvc.lock beside it "
                           "that does not describe it?): an A/B test would compare a model with itself")
    if files_outs(folder) == files_outs(current):
        raise RolloutError(f"{folder} holds the same model files as the current folder {current}")


def command_status(args: argparse.Namespace, settings: Settings, client: RolloutClientSettings) -> int:
    """Print the rollout file's state with each folder's version, and what the API serves."""
    state = read_state(args.file, settings.models_dir)
    if args.json:
        print(json.dumps({"file": str(args.file), **asdict(state)}, indent=2))
        return 0
    print(f"rollout file: {args.file}{'' if args.file.is_file() else ' (absent: RAKUTEN_API_MODELS_DIR alone)'}")
    print(f"current:   {describe_folder(state.current, settings)}")
    print(f"candidate: {describe_folder(state.candidate, settings)}"
          + (f", {state.candidate_share:.1%} of products" if state.candidate else ""))
    print(f"previous:  {describe_folder(state.previous, settings)}")
    try:
        served = call_api("GET", f"{client.api_url.rstrip('/')}/status", client.timeout_seconds)
    except ApiError as error:
        print(f"API: {error}")
        return 0
    candidate = served.get("candidate")
    print(f"API at {client.api_url}: current {served['model_version']}"
          + (f", candidate {candidate['model_version']} for {candidate['share']:.1%}" if candidate else "")
          + (f"; last reload failed: {served['reload_error']}" if served.get("reload_error") else ""))
    return 0


def planned_change(args: argparse.Namespace, settings: Settings):
    """The state change a command asks for, as a function of the present state."""
    if args.command == "set-candidate":
        if not 0.0 <= args.share <= 1.0:
            raise RolloutError(f"--share must be between 0 and 1, not {args.share}")

        def change(state: RolloutState) -> RolloutState:
            """The state with this candidate, checked against the current folder at edit time."""
            check_candidate(args.folder, Path(state.current), settings)
            return with_candidate(state, str(args.folder), args.share)

        return change
    return ACTIONS[args.command]


def read_password(args: argparse.Namespace, client: RolloutClientSettings) -> str | None:
    """The admin password: the first line of stdin with --password-stdin, else RAKUTEN_ROLLOUT_PASSWORD."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return client.password.get_secret_value() if client.password else None


def reload_through_api(args: argparse.Namespace, settings: Settings, client: RolloutClientSettings,
                       after: RolloutState) -> None:
    """Say what the file now holds, then ask the API to load it; ReloadError (file put back) on a 409."""
    print(f"{args.command}: current {after.current}"
          + (f", candidate {after.candidate} for {after.candidate_share:.1%}" if after.candidate else ", no candidate")
          + (f", previous {after.previous}" if after.previous else "") + f" (written to {args.file})")
    password = read_password(args, client)
    if args.no_reload or not client.user or password is None:
        print(f"not calling the API (no --user/RAKUTEN_ROLLOUT_USER and password, or --no-reload): its workers "
              f"pick the change up within {settings.rollout_check_seconds:g} s of their next request")
        return
    try:
        result = request_reload(client, password)
    except ApiError as error:
        if error.status == 409:  # the API still serves the old models: no worker should try again
            raise ReloadError(str(error)) from error
        raise
    print(f"API reloaded: current {result['current']}"
          + (f", candidate {result['candidate']} for {result['candidate_share']:.1%}" if result["candidate"] else ""))


def command_change(args: argparse.Namespace, settings: Settings, client: RolloutClientSettings) -> int:
    """Edit the rollout file for set-candidate, promote, rollback or drop-candidate, then reload the API."""
    try:
        roll_out(args.file, settings.models_dir, planned_change(args, settings),
                 lambda after: reload_through_api(args, settings, client, after))
    except ReloadError as error:
        print(f"error: {error}\nthe rollout file was restored to its previous state", file=sys.stderr)
        return 1
    except ApiError as error:
        if error.status is None:
            print(f"warning: {error}; running workers pick the change up by themselves", file=sys.stderr)
            return 0
        print(f"error: {error}\nthe rollout file is changed; workers pick it up by themselves", file=sys.stderr)
        return 1
    return 0


def common_options(settings: Settings, client: RolloutClientSettings) -> argparse.ArgumentParser:
    """Options every command takes: the file, the API and its admin user."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--file", type=Path, default=settings.rollout_file,
                        help=f"rollout file (default: RAKUTEN_API_ROLLOUT_FILE or {settings.rollout_file})")
    common.add_argument("--api-url", default=client.api_url,
                        help=f"running API (default: RAKUTEN_ROLLOUT_API_URL or {client.api_url})")
    common.add_argument("--user", default=client.user,
                        help="admin user for POST /admin/reload (default: RAKUTEN_ROLLOUT_USER)")
    common.add_argument("--password-stdin", action="store_true",
                        help="read the admin password from stdin (default: RAKUTEN_ROLLOUT_PASSWORD)")
    common.add_argument("--no-reload", action="store_true", help="only edit the file (workers notice it anyway)")
    return common


def build_parser(settings: Settings, client: RolloutClientSettings) -> argparse.ArgumentParser:
    """Command-line interface: status, set-candidate, promote, rollback, drop-candidate."""
    parser = argparse.ArgumentParser(prog="python -m rakuten_mm.serving.rollout", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    common = [common_options(settings, client)]
    status = commands.add_parser("status", parents=common,
                                 help="what the file says, each folder's version, what the API serves")
    status.add_argument("--json", action="store_true", help="print the file's state as JSON")
    candidate = commands.add_parser("set-candidate", parents=common,
                                    help="serve a models folder to a share of the products")
    candidate.add_argument("folder", type=Path, help="a models folder (text/, image/, fusion/)")
    candidate.add_argument("--share", type=float, default=0.1, help="share of products, 0-1 (default: %(default)s)")
    commands.add_parser("promote", parents=common,
                        help="the candidate becomes current; the current one is kept for rollback")
    commands.add_parser("rollback", parents=common,
                        help="the previous models become current again; any candidate is stopped")
    commands.add_parser("drop-candidate", parents=common,
                        help="stop the candidate; every product goes to the current models")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one rollout command; errors go to stderr with exit code 1."""
    settings, client = Settings(), RolloutClientSettings()
    args = build_parser(settings, client).parse_args(argv)
    client = client.model_copy(update={"api_url": args.api_url, "user": args.user})
    try:
        if args.command == "status":
            return command_status(args, settings, client)
        return command_change(args, settings, client)
    except (RolloutError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
