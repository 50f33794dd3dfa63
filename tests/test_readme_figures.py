"""Every figure the README quotes comes from a file in the repository, and says the same.

Both sides are read as committed (git HEAD), not from the working tree: `make run` rewrites
metrics/ with what this machine's CPU trains, and the README quotes the committed run.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def committed(path: str) -> str:
    """A file's text at git HEAD; the working tree's outside a git checkout (e.g. a source archive)."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=REPO_ROOT, capture_output=True, text=True,
                           check=False)
    return shown.stdout if shown.returncode == 0 else (REPO_ROOT / path).read_text(encoding="utf-8")


README = committed("README.md")
RESULTS = REPO_ROOT / "benchmarks" / "results"


def section(title: str) -> str:
    """The README text from a `## title` heading to the next `## ` heading."""
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table row of a text, header and ruler rows left out."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    return [row for row in rows if not set("".join(row)) <= set("-: ")][1:] if rows else []


def test_the_results_table_is_evaluate_s_metrics():
    metrics = json.loads(committed("metrics/evaluate/metrics.json"))
    # The results table: model, what, validation F1, then test accuracy, weighted and macro F1.
    rows = {re.sub(r"[*`]", "", row[0]).split()[0]: row for row in table_rows(section("Results of the default run"))
            if len(row) == 6 and re.sub(r"[*`]", "", row[0]).split()[0] in metrics["test"]}
    assert set(rows) == {"text", "image", "baseline", "fusion"}
    for model, row in rows.items():
        quoted = [float(re.sub(r"[*`]", "", cell)) for cell in row[-4:]]
        expected = [metrics["val"][model]["f1_weighted"], metrics["test"][model]["accuracy"],
                    metrics["test"][model]["f1_weighted"], metrics["test"][model]["f1_macro"]]
        assert quoted == pytest.approx(expected, abs=0.0005), model


def test_the_latency_quoted_is_the_committed_one():
    latency = json.loads(committed("metrics/latency.json"))
    match = re.search(r"batch 1: ([0-9.]+) ms per item, batch 64: ([0-9.]+) ms per item", README)
    assert match, "the README should quote metrics/latency.json"
    assert float(match.group(1)) == pytest.approx(latency["batch_1"]["per_item_ms_p50"], abs=0.05)
    assert float(match.group(2)) == pytest.approx(latency["batch_64"]["per_item_ms_p50"], abs=0.005)


@pytest.mark.parametrize("name", sorted(path.name for path in RESULTS.glob("*.md")))
def test_benchmark_tables_are_quoted_as_written(name):
    """A benchmark the README cites appears there with its results file's table rows, unchanged."""
    if f"benchmarks/results/{name}" not in README and f"benchmarks/results/{name.removesuffix('.md')}" not in README:
        pytest.skip(f"the README does not cite {name}")
    rows = [line.strip() for line in committed(f"benchmarks/results/{name}").splitlines() if line.startswith("|")]
    missing = [row for row in rows if row not in README]
    assert not missing, f"README rows differ from {name}: {missing[:3]}"


def test_the_review_rule_quoted_is_evaluate_s():
    metrics = json.loads(committed("metrics/evaluate/metrics.json"))
    text = " ".join(section("The review loop").split())
    match = re.search(r"threshold for 95% precision is \*\*([0-9.]+)\*\*; out of fold on the ([0-9,]+) validation "
                      r"rows .*? it files ([0-9.]+)% of the products at ([0-9.]+)% precision, and on the ([0-9,]+) "
                      r"test rows it files \*\*([0-9.]+)% at ([0-9.]+)% precision\*\*", text)
    assert match, "the review section should quote the default run's threshold, coverage and precision"
    threshold, _, val_coverage, val_precision, _, test_coverage, test_precision = (
        float(group.replace(",", "")) for group in match.groups())
    assert threshold == pytest.approx(metrics["review"]["threshold"], abs=0.0005)
    shares = [val_coverage, val_precision, test_coverage, test_precision]
    assert shares == pytest.approx([100 * metrics[split]["review"][name] for split in ("val", "test")
                                    for name in ("coverage", "precision")], abs=0.05)


def test_the_stage_commands_the_readme_shows_are_dvc_yaml_s():
    # The "Cheap sweeps" dry-run output went stale once already (old arguments, a stage missing).
    import yaml

    commands = {" ".join(stage["cmd"].split()) for stage in
                yaml.safe_load(committed("dvc.yaml"))["stages"].values()}
    shown = [line[2:].strip() for line in README.splitlines() if line.startswith("> python -m stages.")]
    assert shown
    assert [line for line in shown if line not in commands] == []
