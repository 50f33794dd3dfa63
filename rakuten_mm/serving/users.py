"""API users: bcrypt hashes in a JSON or YAML file (and/or the environment), and a CLI to add them.

    python -m rakuten_mm.serving.users add alice            # prompts twice for the password
    python -m rakuten_mm.serving.users add ops --admin      # may call /admin/* (model reload)
    printf '%s\\n' "$PASSWORD" | python -m rakuten_mm.serving.users add alice --password-stdin
    python -m rakuten_mm.serving.users list | remove alice

The file maps each name to its hash: {"users": {"alice": {"password_hash": "$2b$12$...", "admin": false}}}.
"""

import argparse
import getpass
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from rakuten_mm.jsonfiles import replace_file
from rakuten_mm.serving.security import hash_password, verify_password

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 8
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


@dataclass(frozen=True)
class User:
    """One account: its name, bcrypt hash, whether it may log in and whether it may call /admin/*."""

    username: str
    password_hash: str
    disabled: bool = False
    admin: bool = False


def _is_yaml(path: Path) -> bool:
    """YAML for .yaml/.yml files, JSON otherwise."""
    return path.suffix.lower() in (".yaml", ".yml")


def read_users_file(path: Path) -> dict[str, User]:
    """The users of a file; an absent file has none."""
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    data = (yaml.safe_load(text) if _is_yaml(path) else json.loads(text)) or {}
    entries = data.get("users") or {}
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: 'users' must map user names to {{password_hash: ...}}")
    return {name: user_from_entry(name, entry) for name, entry in entries.items()}


def user_from_entry(name: str, entry: dict | str) -> User:
    """A user from its file entry {password_hash, disabled, admin}, or from a bare hash (environment)."""
    if isinstance(entry, str):
        return User(name, entry)
    return User(name, str(entry["password_hash"]), bool(entry.get("disabled", False)), bool(entry.get("admin", False)))


def write_users_file(path: Path, users: dict[str, User]) -> None:
    """Write the users atomically, readable by the owner only (the hashes are secrets too)."""
    data = {"users": {u.username: {"password_hash": u.password_hash, "disabled": u.disabled, "admin": u.admin}
                      for u in sorted(users.values(), key=lambda u: u.username)}}
    text = yaml.safe_dump(data, sort_keys=True) if _is_yaml(path) else json.dumps(data, indent=2) + "\n"
    replace_file(path, text, mode=0o600)


class UserStore:
    """Users of the file (re-read when it changes, so `add` needs no restart) and of the environment."""

    def __init__(self, path: Path | None, env_users: dict[str, str | dict] | None = None, bcrypt_rounds: int = 12):
        self.path = path
        self.env_users = {name: user_from_entry(name, entry) for name, entry in (env_users or {}).items()}
        self._file_users: dict[str, User] = {}
        self._mtime: float | None = None
        self._lock = threading.Lock()
        # Checked when the name is unknown, so that a login costs the same whether it exists or not.
        self._dummy_hash = hash_password(os.urandom(16).hex(), bcrypt_rounds)
        self._file_users_now(strict=True)  # a broken file stops the start, not the first login

    def _file_users_now(self, strict: bool = False) -> dict[str, User]:
        """The file's users, re-read only when its modification time changed."""
        if self.path is None:
            return {}
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        with self._lock:
            if mtime != self._mtime:
                try:
                    self._file_users = read_users_file(self.path) if mtime is not None else {}
                except (ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as error:
                    if strict:
                        raise ValueError(f"cannot read users file {self.path}: {error}") from error
                    # Caught mid-edit or broken: keep serving the last good users.
                    log.error("cannot read users file %s, keeping the previous users: %s", self.path, error)
                self._mtime = mtime
            return self._file_users

    def get(self, username: str) -> User | None:
        """The enabled user of that name (the environment wins over the file), or None."""
        user = self.env_users.get(username) or self._file_users_now().get(username)
        return None if user is None or user.disabled else user

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches; None otherwise, in about the same time either way."""
        user = self.get(username)
        if user is None:
            verify_password(password, self._dummy_hash)
            return None
        return user if verify_password(password, user.password_hash) else None


def check_username(name: str) -> str:
    """A user name of 1-64 letters, digits or ._@- characters."""
    if not 1 <= len(name) <= 64 or not set(name) <= USERNAME_CHARS:
        raise ValueError("user names are 1-64 characters among letters, digits and . _ @ -")
    return name


def read_new_password(from_stdin: bool) -> str:
    """Prompt twice on a terminal; otherwise read one line from standard input."""
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise ValueError("the two passwords differ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"passwords must be at least {MIN_PASSWORD_LENGTH} characters long")
    return password


def _command_add(args: argparse.Namespace) -> str:
    """Add a user (or replace its password with --update)."""
    users = read_users_file(args.file)
    name = check_username(args.name)
    if name in users and not args.update:
        raise ValueError(f"user {name!r} already exists in {args.file} (use --update to change the password)")
    # --update keeps the admin flag unless --admin or --no-admin says otherwise.
    admin = args.admin if args.admin is not None else (name in users and users[name].admin)
    users[name] = User(name, hash_password(read_new_password(args.password_stdin), args.rounds), admin=admin)
    write_users_file(args.file, users)
    return f"{'admin' if admin else 'user'} {name!r} written to {args.file}"


def _command_remove(args: argparse.Namespace) -> str:
    """Remove a user."""
    users = read_users_file(args.file)
    if users.pop(args.name, None) is None:
        raise ValueError(f"no user {args.name!r} in {args.file}")
    write_users_file(args.file, users)
    return f"user {args.name!r} removed from {args.file}"


def _command_list(args: argparse.Namespace) -> str:
    """List user names and flags (never hashes)."""
    users = sorted(read_users_file(args.file).values(), key=lambda u: u.username)
    return "\n".join(f"{u.username}{' (admin)' if u.admin else ''}{' (disabled)' if u.disabled else ''}" for u in users)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface: add, remove, list."""
    from rakuten_mm.serving.config import Settings

    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m rakuten_mm.serving.users", description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=settings.users_file,
                        help=f"users file, .json or .yaml (default: RAKUTEN_API_USERS_FILE or {settings.users_file})")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a user (prompts for the password, or reads it from stdin)")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.add_argument("--rounds", type=int, default=settings.bcrypt_rounds, help="bcrypt cost (default: %(default)s)")
    add.add_argument("--update", action="store_true", help="replace the password of an existing user")
    add.add_argument("--admin", action=argparse.BooleanOptionalAction, default=None,
                     help="may call /admin/* endpoints (model reload); --update keeps the flag unless given")
    add.set_defaults(run=_command_add)
    remove = commands.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(run=_command_remove)
    commands.add_parser("list", help="list user names").set_defaults(run=_command_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one users command; errors go to stderr with exit code 1."""
    args = build_parser().parse_args(argv)
    try:
        message = args.run(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if message:
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
