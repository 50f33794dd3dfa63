"""What a benchmark result records about its run: the commit and the machine."""

import os
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    """CPU model, cores, the 1-minute load average now, and the Python version."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "load_average_1m": os.getloadavg()[0],
            "python": platform.python_version()}


def commit() -> str:
    """The checkout's commit (with -dirty when it has uncommitted changes)."""
    described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                               text=True, check=False)
    return described.stdout.strip() or "unknown"
