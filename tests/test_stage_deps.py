"""Every project module a stage imports (directly or not) is among that stage's deps in dvc.yaml.

A missing dep means that editing the module would not rerun the stage: `dvc repro` would keep
outputs made by the old code.
"""

import ast
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rakuten_mm", "stages")


def module_file(module: str) -> Path | None:
    """The file of a project module (package __init__ or module), None for third-party modules."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Names of the modules a file imports (both `import a.b` and `from a.b import c`, c as a.b.c too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_files_imported_by(entry: Path) -> set[Path]:
    """The project files an entry script runs: itself and every project module it imports, transitively."""
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path):
            parts = module.split(".")
            # Importing a.b.c also runs the __init__ of every package on the way.
            for depth in range(1, len(parts) + 1):
                found = module_file(".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def has_code(path: Path) -> bool:
    """True when a file holds more than a docstring."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def is_covered(path: Path, deps: list[str]) -> bool:
    """True when the file, or a folder holding it, is a dep; __init__ files with no code need none."""
    relative = path.relative_to(REPO_ROOT)
    if path.name == "__init__.py" and not has_code(path):
        return True
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


STAGES = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_project_module_is_a_dep(name):
    stage = STAGES[name]
    module = stage["cmd"].split()[2]
    entry = module_file(module)
    assert entry is not None, f"{name}: cannot find the module of {stage['cmd']!r}"
    missing = sorted(str(path.relative_to(REPO_ROOT)) for path in project_files_imported_by(entry)
                     if not is_covered(path, stage["deps"]))
    assert not missing, f"stage {name} imports modules missing from its deps in dvc.yaml: {missing}"


def test_the_check_sees_a_missing_dep():
    entry = module_file("stages.train_fusion")
    files = {str(p.relative_to(REPO_ROOT)) for p in project_files_imported_by(entry)}
    assert {"rakuten_mm/models/fusion.py", "rakuten_mm/categories.py", "rakuten_mm/evaluation/metrics.py"} <= files
    deps = [dep for dep in STAGES["train_fusion"]["deps"] if dep != "rakuten_mm/models/fusion.py"]
    assert not is_covered(REPO_ROOT / "rakuten_mm/models/fusion.py", deps)
