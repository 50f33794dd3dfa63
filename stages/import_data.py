"""Stage `import`: bring the raw data into data/raw/ in the challenge layout."""

import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from rakuten_mm.data.corrections import RAW_CORRECTIONS, copy_corrections
from rakuten_mm.data.importers import HubUnreachableError, download_from_hub, import_from_dir
from rakuten_mm.data.raw_layout import IMPORT_REPORT, RawLayoutError
from rakuten_mm.data.synthetic import generate_sample
from rakuten_mm.stage import start_stage

log = logging.getLogger("import")
SOURCES = ("sample", "hub", "dir")


def import_raw(params: dict, out: Path) -> dict:
    """Fill `out` from the source named by import.source."""
    source, files = params["source"], params["files"]
    if source == "sample":
        sample = params["sample"]
        return generate_sample(
            out, n_labelled=sample["n_labelled"], n_unlabelled=sample["n_unlabelled"],
            seed=sample["seed"], workers=sample["workers"], files=files,
            missing_image_rate=sample["missing_image_rate"], corrupt_image_rate=sample["corrupt_image_rate"],
        )
    if source == "dir":
        return import_from_dir(params["dir"]["path"], out, files)
    if source == "hub":
        with tempfile.TemporaryDirectory() as links:
            return import_from_dir(download_from_hub(params["hub"], links), out, files)
    raise ValueError(f"import.source must be one of {SOURCES}, got {source!r}")


def main() -> None:
    """Import raw data into the out folder from the source params.yaml names."""
    params, args = start_stage("import", ["out"], "Import raw data (sample, hub or dir).",
                               optional_paths=("corrections",))
    out, p = Path(args.out), params["import"]
    shutil.rmtree(out, ignore_errors=True)
    try:
        summary = import_raw(p, out)
        # Reviewers' corrections (import.corrections), merged by make_dataset.
        summary["corrections"] = copy_corrections(p.get("corrections") or [], args.corrections,
                                                  out / RAW_CORRECTIONS, p["files"])
    except (HubUnreachableError, RawLayoutError, FileNotFoundError, ValueError) as error:
        log.error("%s", error)
        sys.exit(1)
    (out / IMPORT_REPORT).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s: %s", out, summary)


if __name__ == "__main__":
    main()
