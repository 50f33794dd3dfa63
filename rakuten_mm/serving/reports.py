"""What the pipeline and the drift monitor wrote about the served models, read defensively (and once per change).

The evaluate stage writes metrics/evaluate/metrics.json (`{"val": {model: {...}}, "test": {model: {...}},
"per_class_f1": {code: f1}}`) and the confusion matrix as DVC plot data (a list of {"actual", "predicted"} rows). Any file may be missing, half
written or of another layout: the console then says so instead of failing.
"""

import logging
from collections import Counter
from pathlib import Path

import yaml

from rakuten_mm.categories import CATEGORY_NAMES
from rakuten_mm.jsonfiles import read_file
from rakuten_mm.serving.config import Settings
from rakuten_mm.serving.deployment import LoadedModels, Served
from rakuten_mm.serving.metrics import read_drift_report

log = logging.getLogger(__name__)
METRIC_NAMES = ("accuracy", "f1_weighted", "f1_macro", "coverage")
# Sections of metrics.json, most wanted first: the test split is what the README reports.
SPLIT_SECTIONS = ("test", "val")
DRIFT_FIELDS = ("test", "score", "threshold", "drifted", "n_reference", "n_production")


def model_scores(section: dict) -> dict[str, dict[str, float]]:
    """{model: {metric: value}} for the entries of a section that look like one model's scores."""
    scores = {}
    for name, values in section.items():
        if isinstance(values, dict) and isinstance(values.get("f1_weighted"), int | float):
            scores[name] = {k: float(values[k]) for k in METRIC_NAMES if isinstance(values.get(k), int | float)}
    return scores


def per_class_f1(data: dict) -> list[dict]:
    """[{prdtypecode, category, f1}] in code order, from the file's {code: f1}."""
    values = data.get("per_class_f1")
    if not isinstance(values, dict):
        return []
    rows = []
    for code, f1 in values.items():
        if str(code).isdigit() and isinstance(f1, int | float):
            rows.append({"prdtypecode": int(code), "category": CATEGORY_NAMES.get(int(code), ""), "f1": float(f1)})
    return sorted(rows, key=lambda row: row["prdtypecode"])


def evaluation_metrics(path: Path) -> dict | None:
    """Scores per model of the test section (else the validation one) and per-class F1."""
    data = read_file(path)
    if not isinstance(data, dict):
        return None
    split = next((name for name in SPLIT_SECTIONS if isinstance(data.get(name), dict)), None)
    scores = model_scores(data[split]) if split else {}
    if not scores:
        log.warning("%s holds no model scores", path)
        return None
    return {"split": split, "models": scores, "per_class_f1": per_class_f1(data)}


def label_order(label: str) -> tuple:
    """Sort key: numeric codes in numeric order, then anything else alphabetically."""
    return (0, int(label), label) if label.isdigit() else (1, 0, label)


def confusion_matrix(path: Path) -> dict | None:
    """{labels, matrix} counting (actual, predicted) pairs of the DVC plot data; labels in code order."""
    rows = read_file(path)
    if not isinstance(rows, list):
        return None
    pairs = Counter((str(r["actual"]), str(r["predicted"])) for r in rows
                    if isinstance(r, dict) and "actual" in r and "predicted" in r)
    if not pairs:
        return None
    labels = sorted({label for pair in pairs for label in pair}, key=label_order)
    return {"labels": labels, "matrix": [[pairs[(actual, predicted)] for predicted in labels] for actual in labels]}


def evaluated_model_outs(dvc_lock: Path) -> dict[str, str]:
    """md5 of each models/ dependency of the evaluate stage in a dvc.lock (empty without one)."""
    lock = read_file(dvc_lock, yaml.safe_load)
    stages = lock.get("stages", {}) if isinstance(lock, dict) else {}
    deps = stages.get("evaluate", {}).get("deps", [])
    return {d["path"]: d["md5"] for d in deps if str(d.get("path", "")).startswith("models/") and "md5" in d}


def matches_served(models: LoadedModels, project: Path) -> bool | None:
    """Whether evaluate scored exactly the served model files (None when dvc.lock cannot tell)."""
    if models.identity.source != "dvc.lock":
        return None
    evaluated = evaluated_model_outs(project / "dvc.lock")
    if not evaluated:
        return None
    return all(evaluated.get(path) == md5 for path, md5 in models.model_outs.items())


def served_evaluation(models: LoadedModels, variant: str, settings: Settings) -> dict:
    """The evaluate outputs beside one served models folder."""
    project = models.folder.parent
    metrics_path, matrix_path = project / settings.evaluate_metrics, project / settings.confusion_matrix
    metrics = evaluation_metrics(metrics_path)
    return {
        "variant": variant,
        "model_version": models.version,
        "metrics": metrics,
        "confusion_matrix": confusion_matrix(matrix_path),
        "matches_served": matches_served(models, project) if metrics else None,
    }


def evaluation_report(served: Served, settings: Settings) -> list[dict]:
    """The evaluate outputs of each served models folder: current first, then any candidate."""
    report = [served_evaluation(served.current, "current", settings)]
    if served.candidate is not None:
        report.append(served_evaluation(served.candidate, "candidate", settings))
    return report


def drift_summary(path: Path) -> dict:
    """The latest drift report's verdict per feature, without the distributions; available=False without one."""
    report = read_drift_report(path)
    if report is None:
        return {"available": False, "features": {}}
    features = {name: {k: values.get(k) for k in DRIFT_FIELDS}
                for name, values in report["features"].items() if isinstance(values, dict)}
    return {"available": True, "generated_at": report.get("generated_at"), "status": report.get("status"),
            "drift_detected": bool(report.get("drift_detected")), "n_production": report.get("n_production"),
            "review_share": share if isinstance(share := report.get("review_share"), int | float) else None,
            "features": features}
