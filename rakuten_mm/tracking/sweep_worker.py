"""One worker of a sweep: one parameter set, run as a DVC experiment in a clean clone, then shared.

    python -m rakuten_mm.tracking.sweep_worker --sweep sweeps/text_and_fusion.yaml --index 1 \\
        --repo https://git.example.com/team/rakuten-mm.git --rev <commit>

1. clone the git remote and check out the commit (detached);
2. when the git remote already holds this experiment (`<sweep>-<index>` on that commit): done;
3. `dvc exp run --pull -S ... --name <sweep>-<index>`, which pulls from the DVC remote the outputs
   of the stages it does not rerun (the inputs of those it reruns among them);
4. `dvc push --run-cache`: the experiment's outputs go to the DVC remote;
5. `dvc exp push --no-cache <git remote> <name>`: then, and only then, its git ref.

Steps 4 and 5 are `dvc exp push` in the other order: DVC pushes the ref first, so a worker killed
between the two would leave on the git remote an experiment whose models nobody can pull. A git ref
update is atomic, so a killed worker leaves either nothing or a complete experiment.

Each option defaults to an environment variable, for engines that pass settings that way (a
Kubernetes Indexed Job sets JOB_COMPLETION_INDEX). DVC remote credentials come from the
environment as DVC reads them (AWS_ACCESS_KEY_ID, ...); DVC_S3_ENDPOINT_URL sends the S3 remote's
requests to another S3-compatible endpoint, as in the pipeline image.
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rakuten_mm.tracking.sweeps import (DEFAULT_GIT_REMOTE, CommandError, dvc, experiment_name, git,
                                        parameter_sets, sweep_name)

ENV_DEFAULTS = {"sweep": "RAKUTEN_SWEEP_FILE", "index": "JOB_COMPLETION_INDEX", "repo": "RAKUTEN_SWEEP_REPO",
                "rev": "RAKUTEN_SWEEP_REV", "workdir": "RAKUTEN_SWEEP_WORKDIR"}
# The experiment commit needs an author; a worker's machine often has no git identity.
WORKER_IDENTITY = {"user.name": "rakuten sweep worker", "user.email": "sweep-worker@localhost"}
EXIT_FAILED = 1


def log(message: str) -> None:
    """One progress line, flushed at once (engines show the output live)."""
    print(f"sweep-worker: {message}", flush=True)


def experiment_ref(commit: str, name: str) -> str:
    """The git ref DVC stores an experiment under (dvc.repo.experiments.refs.ExpRefInfo)."""
    return f"refs/exps/{commit[:2]}/{commit[2:]}/{name}"


def clone(repo: str, rev: str, destination: Path) -> str:
    """A fresh clone of repo at rev (detached HEAD) in destination; the full commit id."""
    if destination.exists():
        # A previous attempt at this same index, killed: start again from nothing.
        shutil.rmtree(destination)
    git("clone", "--quiet", "--no-checkout", repo, str(destination))
    git("checkout", "--quiet", "--detach", rev, cwd=destination)
    for key, value in WORKER_IDENTITY.items():
        if not git("config", "--default", "", "--get", key, cwd=destination):
            git("config", key, value, cwd=destination)
    return git("rev-parse", "HEAD", cwd=destination)


def already_pushed(clone_dir: Path, git_remote: str, commit: str, name: str) -> bool:
    """Whether the git remote already holds this experiment (a finished run of the same index)."""
    return bool(git("ls-remote", git_remote, experiment_ref(commit, name), cwd=clone_dir))


def run_experiment(clone_dir: Path, settings: list[str], name: str) -> None:
    """dvc exp run with the parameter set, pulling the outputs of the stages it does not rerun."""
    set_args = [arg for setting in settings for arg in ("-S", setting)]
    # Not --allow-missing: DVC would then skip unchanged stages without pulling their outputs,
    # and a rerun stage would miss its inputs.
    dvc("exp", "run", "--pull", *set_args, "--name", name, cwd=clone_dir, stream=True)


def share_experiment(clone_dir: Path, git_remote: str, name: str) -> None:
    """Outputs (and run cache) to the DVC remote first, then the experiment's git ref to the git remote."""
    log(f"pushing the outputs of {name} to the DVC remote")
    dvc("push", "--run-cache", cwd=clone_dir, stream=True)
    log(f"pushing the git ref of {name} to {git_remote}")
    dvc("exp", "push", "--no-cache", git_remote, name, cwd=clone_dir, stream=True)


def run_worker(sweep_file: str, index: int, repo: str, rev: str, workdir: Path,
               git_remote: str = DEFAULT_GIT_REMOTE) -> str:
    """Run parameter set `index` of the sweep file (as of rev) as an experiment and share it; its name."""
    name = experiment_name(sweep_name(sweep_file), index)
    clone_dir = workdir / name
    log(f"cloning {rev} into {clone_dir}")
    commit = clone(repo, rev, clone_dir)
    sets = parameter_sets(clone_dir / sweep_file)
    if not 0 <= index < len(sets):
        raise ValueError(f"{sweep_file} has {len(sets)} parameter sets: no index {index}")
    if already_pushed(clone_dir, git_remote, commit, name):
        log(f"{name} on {commit[:7]} is already on {git_remote}: nothing to do")
        return name
    log(f"running {name} on {commit[:7]}: {' '.join(sets[index])}")
    run_experiment(clone_dir, sets[index], name)
    share_experiment(clone_dir, git_remote, name)
    log(f"done: {name}")
    return name


def configure_s3_endpoint() -> None:
    """Send the S3 remote's requests to DVC_S3_ENDPOINT_URL when set (botocore reads AWS_ENDPOINT_URL_S3)."""
    endpoint = os.environ.get("DVC_S3_ENDPOINT_URL")
    if endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options, each defaulting to its environment variable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env = {option: os.environ.get(variable) for option, variable in ENV_DEFAULTS.items()}
    parser.add_argument("--sweep", default=env["sweep"], help="sweep file in the repository, e.g. "
                        f"sweeps/fusion.yaml (env {ENV_DEFAULTS['sweep']})")
    parser.add_argument("--index", type=int, default=env["index"],
                        help=f"parameter set to run, from 0 (env {ENV_DEFAULTS['index']})")
    parser.add_argument("--repo", default=env["repo"], help=f"git remote URL to clone (env {ENV_DEFAULTS['repo']})")
    parser.add_argument("--rev", default=env["rev"] or "HEAD",
                        help=f"commit (or branch) to run on (env {ENV_DEFAULTS['rev']}; default HEAD)")
    parser.add_argument("--workdir", type=Path, default=env["workdir"],
                        help=f"folder for the clone, kept afterwards (env {ENV_DEFAULTS['workdir']}; "
                             "default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    missing = [option for option in ("sweep", "index", "repo") if getattr(args, option) in (None, "")]
    if missing:
        parser.error(f"missing {', '.join('--' + option for option in missing)} (or their environment variables)")
    return args


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: exit 0 when the experiment is on the remotes, 1 when it is not."""
    args = parse_args(argv)
    configure_s3_endpoint()
    try:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            run_worker(args.sweep, args.index, args.repo, args.rev, args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="sweep-worker-") as workdir:
                run_worker(args.sweep, args.index, args.repo, args.rev, Path(workdir))
    except (CommandError, ValueError, OSError) as error:
        # The URL may carry a token (Kubernetes Secret): keep it out of the logs.
        log(f"FAILED: {str(error).replace(args.repo, '<git remote>')}")
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
