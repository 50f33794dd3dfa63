"""Where the project lives and how to run its commands from Airflow's own virtual environment.

Airflow and the project have separate venvs (their pins conflict), so every step runs the
project's CLI in a subprocess with the project's interpreter first on PATH: `dvc repro` then
starts the stages (`python -m stages.<name>`) with the project's Python too.
"""

import logging
import os
import subprocess
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
# Lines of a failed command's output repeated in the exception (the whole output is in the task log).
ERROR_TAIL_LINES = 30
# Variables of Airflow's interpreter that must not leak into the project's.
FOREIGN_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


class ProjectConfigError(ValueError):
    """A setting the DAG needs is missing or points nowhere."""


class CommandFailed(RuntimeError):
    """A project command exited with a code the step does not accept."""

    def __init__(self, args: Sequence[str], returncode: int, tail: Sequence[str]):
        super().__init__(f"{' '.join(args)} exited with {returncode}:\n" + "\n".join(tail))
        self.returncode = returncode
        self.tail = list(tail)


@dataclass(frozen=True)
class SettingSource:
    """One setting: its DAG param, Airflow Variable and environment variable names."""

    param: str
    variable: str
    env: str


PROJECT_DIR = SettingSource("project_dir", "rakuten_project_dir", "RAKUTEN_PROJECT_DIR")
PROJECT_PYTHON = SettingSource("python", "rakuten_python", "RAKUTEN_PYTHON")
PRODUCTION_REV = SettingSource("production_rev", "rakuten_production_rev", "RAKUTEN_PRODUCTION_REV")
RELEASES_DIR = SettingSource("releases_dir", "rakuten_releases_dir", "RAKUTEN_RELEASES_DIR")


def resolve_setting(params: Mapping, source: SettingSource) -> str | None:
    """The first non-empty of: the run's param, the Airflow Variable, the environment variable."""
    value = params.get(source.param)
    if value not in (None, ""):
        return str(value)
    # Imported here: the module stays importable without a running task (Variables need one).
    from airflow.sdk import Variable

    value = Variable.get(source.variable, default=None)
    if value not in (None, ""):
        return str(value)
    return os.environ.get(source.env) or None


@dataclass(frozen=True)
class Project:
    """A checkout of the project and the interpreter of its venv."""

    directory: Path
    python: Path

    @classmethod
    def from_params(cls, params: Mapping) -> "Project":
        """Resolve the project folder and its python (default: <project>/.venv/bin/python); check both."""
        directory = resolve_setting(params, PROJECT_DIR)
        if not directory:
            raise ProjectConfigError(
                f"no project folder: set the DAG param `{PROJECT_DIR.param}`, the Airflow Variable "
                f"`{PROJECT_DIR.variable}` or the environment variable {PROJECT_DIR.env}")
        directory_path = Path(directory).expanduser().resolve()
        python = resolve_setting(params, PROJECT_PYTHON)
        python_path = Path(python).expanduser() if python else directory_path / ".venv" / "bin" / "python"
        if not (directory_path / "dvc.yaml").is_file():
            raise ProjectConfigError(f"{directory_path} has no dvc.yaml: not a checkout of the project")
        if not os.access(python_path, os.X_OK):
            raise ProjectConfigError(f"{python_path} is not an executable interpreter (run `make setup` there)")
        return cls(directory_path, python_path)

    def environment(self) -> dict[str, str]:
        """Airflow's environment with the project's venv first on PATH and Airflow's Python variables removed."""
        env = {name: value for name, value in os.environ.items() if name not in FOREIGN_PYTHON_VARIABLES}
        # Not resolved: a venv's python is often a symlink to the base interpreter.
        venv_bin = self.python.parent
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
        if (venv_bin.parent / "pyvenv.cfg").is_file():
            env["VIRTUAL_ENV"] = str(venv_bin.parent)
        return env

    def run(self, args: Sequence[str], ok_codes: Sequence[int] = (0,),
            extra_env: Mapping[str, str] | None = None) -> int:
        """Run `python args...` in the project folder, log its output line by line, return its exit code."""
        command = [str(self.python), *args]
        log.info("running in %s: %s", self.directory, " ".join(command))
        tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
        env = {**self.environment(), **(extra_env or {})}
        with subprocess.Popen(command, cwd=self.directory, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL) as process:
            for line in process.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                log.info("%s", line)
        if process.returncode not in ok_codes:
            raise CommandFailed(command, process.returncode, list(tail))
        return process.returncode

    def dvc(self, *args: str) -> int:
        """A DVC command through the project's own dvc (python -m dvc)."""
        return self.run(["-m", "dvc", *args])

    def git(self, *args: str) -> str:
        """A git command in the project folder; its standard output."""
        result = subprocess.run(["git", *args], cwd=self.directory, capture_output=True, text=True)
        if result.returncode != 0:
            raise CommandFailed(["git", *args], result.returncode, result.stderr.splitlines()[-ERROR_TAIL_LINES:])
        return result.stdout.strip()
