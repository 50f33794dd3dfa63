"""Queue a parameter sweep as DVC experiments on this machine, run the queue, report the best.

    python scripts/sweep.py text_and_fusion [--jobs 2]

A wrapper of `python -m rakuten_mm.tracking.sweep_queue` (the logic lives in the package, beside
the sweep worker that runs one parameter set per machine: rakuten_mm.tracking.sweep_worker).
"""

import sys
from pathlib import Path

# Run as a script from anywhere: the package is beside this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rakuten_mm.tracking.sweep_queue import main  # noqa: E402
from rakuten_mm.tracking.sweeps import DEFAULT_METRIC, combinations  # noqa: E402,F401  (the old names)

if __name__ == "__main__":
    sys.exit(main())
