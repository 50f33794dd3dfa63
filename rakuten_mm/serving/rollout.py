"""A/B rollout of a candidate model beside the current one, from the command line.

    python -m rakuten_mm.serving.rollout status
    python -m rakuten_mm.serving.rollout set-candidate /srv/exp-42/models --share 0.1
    python -m rakuten_mm.serving.rollout promote          # candidate -> current, current kept as previous
    python -m rakuten_mm.serving.rollout rollback         # previous -> current (and no candidate)
    python -m rakuten_mm.serving.rollout drop-candidate   # stop the candidate, keep the current model

Each command edits the rollout file (RAKUTEN_API_ROLLOUT_FILE) and, when an admin user is given
(RAKUTEN_ROLLOUT_USER and RAKUTEN_ROLLOUT_PASSWORD, in the environment or .env), asks the running
API to reload with POST /admin/reload; if the API cannot load the new models the file is put back.
Without a user, the API's workers notice the file change by themselves within
RAKUTEN_API_ROLLOUT_CHECK_SECONDS of their next request.
"""

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from rakuten_mm.serving.config import Settings
from rakuten_mm.serving.rollout_state import (
    RolloutError, RolloutState, edit_state, promoted, read_state, restore_state, rolled_back, with_candidate,
    without_candidate,
)
from rakuten_mm.serving.versions import check_models_dir, files_outs, identify_models, same_folder


class RolloutClientSettings(BaseSettings):
    """Where the running API is and which admin user the rollout command logs in as."""

    model_config = SettingsConfigDict(env_prefix="RAKUTEN_ROLLOUT_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore")

    api_url: str = "http://127.0.0.1:8000"
    user: str | None = None
    password: SecretStr | None = None
    # Loading models takes seconds; a reload answers once they are loaded.
    timeout_seconds: float = 300.0


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
    return {"promote": promoted, "rollback": rolled_back, "drop-candidate": without_candidate}[args.command]


def read_password(args: argparse.Namespace, client: RolloutClientSettings) -> str | None:
    """The admin password: the first line of stdin with --password-stdin, else RAKUTEN_ROLLOUT_PASSWORD."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return client.password.get_secret_value() if client.password else None


def reload_api(args: argparse.Namespace, settings: Settings, client: RolloutClientSettings,
               before: RolloutState) -> int:
    """Ask the API to reload; undo the file change when the API cannot load it. Returns the exit code."""
    password = read_password(args, client)
    if args.no_reload or not client.user or password is None:
        print(f"not calling the API (no --user/RAKUTEN_ROLLOUT_USER and password, or --no-reload): its workers "
              f"pick the change up within {settings.rollout_check_seconds:g} s of their next request")
        return 0
    try:
        result = request_reload(client, password)
    except ApiError as error:
        if error.status is None:
            print(f"warning: {error}; running workers pick the change up by themselves", file=sys.stderr)
            return 0
        if error.status == 409:
            # The API still serves the old models: put the file back so that no worker tries again.
            restore_state(args.file, before)
            print(f"error: {error}\nthe rollout file was restored to its previous state", file=sys.stderr)
            return 1
        print(f"error: {error}\nthe rollout file is changed; workers pick it up by themselves", file=sys.stderr)
        return 1
    print(f"API reloaded: current {result['current']}"
          + (f", candidate {result['candidate']} for {result['candidate_share']:.1%}" if result["candidate"] else ""))
    return 0


def command_change(args: argparse.Namespace, settings: Settings, client: RolloutClientSettings) -> int:
    """Edit the rollout file for set-candidate, promote, rollback or drop-candidate, then reload the API."""
    before, after = edit_state(args.file, settings.models_dir, planned_change(args, settings))
    print(f"{args.command}: current {after.current}"
          + (f", candidate {after.candidate} for {after.candidate_share:.1%}" if after.candidate else ", no candidate")
          + (f", previous {after.previous}" if after.previous else "") + f" (written to {args.file})")
    return reload_api(args, settings, client, before)


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
