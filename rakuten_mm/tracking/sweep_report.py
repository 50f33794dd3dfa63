"""A sweep's best experiment, chosen on a validation metric, and its report (sweeps/reports/<sweep>.md).

    python -m rakuten_mm.tracking.sweep_report --sweep sweeps/text_and_fusion.yaml [--rev <commit>]

fetches the experiments of the sweep's commit from the git remote (`dvc exp pull --no-cache`: their
git refs, which carry the params and the git-tracked metrics), reads them with `dvc exp show --json`,
writes the report (every experiment's params, validation and test scores; the best one's whole
metrics) and prints the best experiment. Its models: `dvc exp pull origin <name> && dvc exp apply <name>`
(`dvc exp apply` checks the outputs out of the local cache: the pull with cache fills it first).
"""

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from rakuten_mm.tracking.nested import flatten
from rakuten_mm.tracking.sweeps import (DEFAULT_GIT_REMOTE, DEFAULT_METRIC, CommandError, dvc, plan,
                                        report_path)

VALIDATION, TEST = "val", "test"
# Exit code when the report is written but some planned experiment is not on the git remote.
EXIT_INCOMPLETE = 3


@dataclass(frozen=True)
class Experiment:
    """One experiment as `dvc exp show` reports it: flattened params.yaml and metrics files."""

    name: str
    rev: str
    params: dict
    metrics: dict


def split_metric(metric: str) -> tuple[str, str]:
    """(metrics file, dotted key) of a `file:key` metric."""
    file, separator, key = metric.partition(":")
    if not separator or not key:
        raise ValueError(f"a metric is `metrics file:dotted.key`, not {metric!r}")
    return file, key


def file_data(results: dict, name: str) -> dict:
    """The data of one file of `dvc exp show`'s params or metrics (empty when it failed to load)."""
    return (results.get(name) or {}).get("data") or {}


def shown_experiments(show: list[dict], metrics_file: str) -> list[Experiment]:
    """The experiments of `dvc exp show --json` output (every baseline), with params and one metrics file."""
    experiments = []
    for baseline in show:
        for group in baseline.get("experiments") or []:
            for state in group.get("revs") or []:
                data = state.get("data") or {}
                if not state.get("name") or not data:
                    continue
                experiments.append(Experiment(state["name"], state["rev"],
                                              flatten(file_data(data.get("params") or {}, "params.yaml")),
                                              flatten(file_data(data.get("metrics") or {}, metrics_file))))
    return experiments


def score(experiment: Experiment, key: str) -> float | None:
    """The experiment's value of a metric key; None when absent or not a number."""
    value = experiment.metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def best_experiment(experiments: list[Experiment], key: str) -> Experiment:
    """The experiment with the highest value of the metric key (the first of equals); ValueError when none has it."""
    scored = [experiment for experiment in experiments if score(experiment, key) is not None]
    if not scored:
        raise ValueError(f"no experiment of this sweep has the metric {key} "
                         f"(found: {', '.join(e.name for e in experiments) or 'none'})")
    return max(scored, key=lambda experiment: score(experiment, key))


def test_key(key: str) -> str | None:
    """The test-split counterpart of a validation metric key (val.x -> test.x); None for other keys."""
    split, separator, rest = key.partition(".")
    return f"{TEST}.{rest}" if split == VALIDATION and separator else None


def formatted(value) -> str:
    """A metric for a markdown cell."""
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def experiments_table(planned: list[dict], found: dict[str, Experiment], key: str, best: str,
                      where: str) -> list[str]:
    """One row per planned experiment: name, swept params, the metric and its test counterpart."""
    swept = [setting.split("=", 1)[0] for setting in planned[0]["params"]] if planned else []
    columns = [key] + ([test_key(key)] if test_key(key) else [])
    lines = ["| experiment | " + " | ".join(swept + columns) + " |",
             "|---|" + "---|" * len(swept) + "---:|" * len(columns)]
    ranked = sorted(planned, key=lambda item: -(score(found[item["name"]], key) or -math.inf)
                    if item["name"] in found else math.inf)
    for item in ranked:
        experiment, values = found.get(item["name"]), [setting.split("=", 1)[1] for setting in item["params"]]
        name = f"**{item['name']}**" if item["name"] == best else item["name"]
        cells = [formatted(score(experiment, column)) for column in columns] if experiment else \
            [f"not {where} (failed, or still running)"] + [""] * (len(columns) - 1)
        lines.append("| " + " | ".join([name, *values, *cells]) + " |")
    return lines


def metrics_table(experiment: Experiment) -> list[str]:
    """Every validation metric of the experiment beside its test value (or every metric, without splits)."""
    rows = sorted({key.partition(".")[2] for key in experiment.metrics if key.partition(".")[0] in (VALIDATION, TEST)})
    if not rows:
        return ["| metric | value |", "|---|---:|"] + [
            f"| {key} | {formatted(value)} |" for key, value in sorted(experiment.metrics.items())]
    return ["| metric | validation | test |", "|---|---:|---:|"] + [
        f"| {row} | {formatted(experiment.metrics.get(f'{VALIDATION}.{row}'))} | "
        f"{formatted(experiment.metrics.get(f'{TEST}.{row}'))} |" for row in rows]


def missing_experiments(sweep_plan: dict, experiments: list[Experiment]) -> list[str]:
    """Names of the planned experiments that are not among the experiments found."""
    found = {experiment.name for experiment in experiments}
    return [item["name"] for item in sweep_plan["experiments"] if item["name"] not in found]


def apply_command(name: str, git_remote: str | None) -> str:
    """The commands that bring an experiment's params, dvc.lock and outputs into a workspace."""
    # exp apply checks the outputs out of the local cache: from elsewhere, pull them with the ref first.
    return f"dvc exp pull {git_remote} {name} && dvc exp apply {name}" if git_remote else f"dvc exp apply {name}"


def render_report(sweep_plan: dict, experiments: list[Experiment], metric: str,
                  git_remote: str | None = DEFAULT_GIT_REMOTE) -> tuple[str, Experiment]:
    """The markdown report of a sweep and its best experiment (among the planned names only).

    git_remote: where the experiments are shared (None: in this repository, as after a local queue).
    """
    file, key = split_metric(metric)
    names = {item["name"] for item in sweep_plan["experiments"]}
    found = {experiment.name: experiment for experiment in experiments if experiment.name in names}
    where = "on the git remote" if git_remote else "in this repository"
    # In the sweep's order, so that of equal scores the lowest index wins, whatever order DVC lists them in.
    best = best_experiment([found[item["name"]] for item in sweep_plan["experiments"] if item["name"] in found], key)
    lines = [f"# Sweep `{sweep_plan['sweep']}`", "",
             f"`{sweep_plan['sweep_file']}` on commit `{sweep_plan['commit']}`: {len(found)} of "
             f"{len(names)} experiments {where}. Chosen on `{key}` of `{file}`"
             + (" (validation split; the test column is reported, never used to choose)." if test_key(key) else "."),
             "", f"Best: **{best.name}** (`{best.rev[:7]}`): `{apply_command(best.name, git_remote)}`", "",
             *experiments_table(sweep_plan["experiments"], found, key, best.name, where), "",
             f"## Metrics of {best.name}", "", *metrics_table(best), ""]
    return "\n".join(lines), best


def collect_report(repo: Path, sweep_file: str, rev: str, git_remote: str, metric: str,
                   fetch: bool = True) -> tuple[Path, Experiment, list[str]]:
    """Pull the sweep's experiment refs (when fetch), write its report in repo; (path, best, missing names)."""
    file, _ = split_metric(metric)
    sweep_plan = plan(repo, sweep_file, rev)
    if fetch:
        dvc("exp", "pull", "--no-cache", "--force", "--rev", sweep_plan["commit"], git_remote, cwd=repo)
    show = json.loads(dvc("exp", "show", "--json", "--rev", sweep_plan["commit"], cwd=repo))
    experiments = shown_experiments(show, file)
    text, best = render_report(sweep_plan, experiments, metric, git_remote)
    path = repo / report_path(sweep_plan["sweep"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, best, missing_experiments(sweep_plan, experiments)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: exit 0, 1 (no best experiment, or a command failed), 3 (--require-all: some missing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", required=True, help="sweep file, relative to the repository (sweeps/x.yaml)")
    parser.add_argument("--rev", default="HEAD", help="the commit the sweep ran on (default: HEAD)")
    parser.add_argument("--git-remote", default=DEFAULT_GIT_REMOTE, help="where the workers pushed (default: origin)")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help=f"file:key to maximise (default: {DEFAULT_METRIC})")
    parser.add_argument("--no-fetch", action="store_true", help="use the experiments already in this repository")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository checkout (default: .)")
    parser.add_argument("--require-all", action="store_true",
                        help=f"exit {EXIT_INCOMPLETE} when some experiment of the sweep is not on the git remote")
    args = parser.parse_args(argv)
    try:
        path, best, missing = collect_report(args.repo, args.sweep, args.rev, args.git_remote, args.metric,
                                             fetch=not args.no_fetch)
    except (CommandError, ValueError) as error:
        print(f"sweep report: {error}", file=sys.stderr)
        return 1
    _, key = split_metric(args.metric)
    print(f"best: {best.name} {key}={score(best, key):.4f}  (report: {path}; models: "
          f"{apply_command(best.name, args.git_remote)})")
    if missing:
        print(f"not on the git remote: {', '.join(missing)}")
        return EXIT_INCOMPLETE if args.require_all else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
