"""Build plots_html/offline.html: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined (no CDN).

`dvc plots show` and `dvc plots diff` fill the template named by `plots.html_template` in .dvc/config.
DVC's default page loads the three libraries from a CDN, so on an offline machine every chart is
blank; this one carries them inline and leaves out DVC's `{scripts}` placeholder (the CDN tags).

    npm pack vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0
    python scripts/build_plots_template.py vega-5.33.1.tgz vega-lite-5.23.0.tgz vega-embed-6.29.0.tgz
"""

import argparse
import base64
import hashlib
import re
import tarfile
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "plots_html" / "offline.html"
# Load order matters: vega-lite needs vega, vega-embed needs both.
BUILDS = {"vega": "package/build/vega.min.js", "vega-lite": "package/build/vega-lite.min.js",
          "vega-embed": "package/build/vega-embed.min.js"}
# DVC replaces these (dvc_render.html); an inlined library must not contain them, nor end the script element.
FORBIDDEN = ("{plot_divs}", "{scripts}", "{refresh_tag}", "</script")
SOURCE_MAP = re.compile(r"\n?//# sourceMappingURL=\S+\s*$")
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC plots</title>
<!-- DVC plots page that works offline (.dvc/config plots.html_template), built by
     scripts/build_plots_template.py. Inlined, unchanged except for their source-map comment:
{sources}
     Vega, Vega-Lite and Vega-Embed are BSD-3-Clause licensed, (c) the University of Washington
     Interactive Data Lab. DVC puts the charts in the plot_divs placeholder of the body; its
     scripts placeholder (the CDN script tags) is deliberately absent. -->
<style>body {{ font-family: system-ui, sans-serif; margin: 1rem; }} table {{ border-spacing: 15px; }}</style>
{scripts}
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def npm_integrity(path: Path) -> str:
    """The tarball's integrity as npm prints it (sha512, base64)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def read_build(tarball: Path) -> tuple[str, str, str]:
    """(package name, version, minified build) of one `npm pack` tarball."""
    name, version = re.fullmatch(r"(.+)-(\d+\.\d+\.\d+)\.tgz", tarball.name).groups()
    with tarfile.open(tarball) as archive:
        code = archive.extractfile(BUILDS[name]).read().decode("utf-8")
    code = SOURCE_MAP.sub("", code)
    found = [text for text in FORBIDDEN if text in code]
    if found:
        raise SystemExit(f"{tarball.name}: contains {found}; it cannot be inlined in the template")
    return name, version, code


def build_page(tarballs: list[Path]) -> str:
    """The template's text with the three libraries inlined in load order."""
    builds = {name: (version, code, tarball) for tarball in tarballs
              for name, version, code in [read_build(tarball)]}
    missing = sorted(set(BUILDS) - set(builds))
    if missing:
        raise SystemExit(f"missing tarballs for {missing}")
    sources = "\n".join(f"       {name} {builds[name][0]} ({npm_integrity(builds[name][2])})" for name in BUILDS)
    scripts = "\n".join(f"<script>/* {name} {builds[name][0]} */\n{builds[name][1]}\n</script>" for name in BUILDS)
    return PAGE.format(sources=sources, scripts=scripts)


def main() -> None:
    """Write the template from the three tarballs named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarballs", nargs=3, type=Path, help="vega, vega-lite and vega-embed tarballs (npm pack)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(build_page(args.tarballs), encoding="utf-8")
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
