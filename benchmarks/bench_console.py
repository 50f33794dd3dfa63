"""Benchmark the web console in Debian's headless Chromium: page load and one classification round trip.

Starts uvicorn on 127.0.0.1 on a pipeline checkout's models (one worker), then in one Chromium
(Playwright, /usr/bin/chromium) measures with the browser's own performance timings:
  first_contentful_paint  the console page's first paint (the sign-in form), per navigation
  classify_form_painted   a signed-in user (token in sessionStorage) reloading the page: navigation
                          start to the frame after the classify form is shown (includes GET /me)
  round_trip_text         click "Classer" to the result on screen, title only (includes POST /predict)
  round_trip_photo        the same with a 500x500 JPEG photo
  predict_request         the POST /predict part of round_trip_photo (Resource Timing: start to response end)
The first navigation (cold cache) is reported apart; the others are medians and p95 over --rounds.

    python benchmarks/bench_console.py [--repo .] [--rounds 20] [--out-dir benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from browser_support import chromium_context, running_server, server_env  # noqa: E402
from rakuten_mm.serving.security import hash_password  # noqa: E402
from rakuten_mm.serving.users import User, write_users_file  # noqa: E402

TITLE = "Piscine tubulaire ronde 3,05 m avec pompe de filtration"
TOKEN_KEY = "rakuten-console-token"


def product_photo() -> bytes:
    """A 500x500 product-like JPEG (the size of the challenge's photos)."""
    from api_support import product_jpeg

    return product_jpeg(side=500)


def summary(values: list[float]) -> dict:
    """Median, p95, min and max in milliseconds, rounded to 0.1 ms."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "median_ms": round(statistics.median(values), 1), "p95_ms": round(p95, 1),
            "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1)}


def wait_for_entry(page, name: str, attempts: int = 500) -> float:
    """startTime (ms since navigation start) of a performance entry, once the page has recorded it."""
    for _ in range(attempts):
        start = page.evaluate("(name) => performance.getEntriesByName(name)[0]?.startTime ?? null", name)
        if start is not None:
            return start
        page.wait_for_timeout(10)
    raise RuntimeError(f"the page never recorded {name}")


def sign_in(page, base_url: str, username: str, password: str) -> str:
    """Sign in through the form; the token the page keeps."""
    page.goto(f"{base_url}/console")
    page.get_by_label("Nom d'utilisateur").fill(username)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    page.locator("#classify-form").wait_for(state="visible")
    return page.evaluate(f"() => sessionStorage.getItem('{TOKEN_KEY}')")


def measure_loads(context, base_url: str, token: str, rounds: int) -> dict:
    """First paint of the sign-in page and of the classify form (signed in), cold first, then warm."""
    fcp, form = [], []
    for _ in range(rounds + 1):
        page = context.new_page()
        page.goto(f"{base_url}/console")
        fcp.append(wait_for_entry(page, "first-contentful-paint"))
        page.evaluate(f"(token) => sessionStorage.setItem('{TOKEN_KEY}', token)", token)
        page.reload()
        # Set by the console two animation frames after it shows the classify form.
        form.append(wait_for_entry(page, "classify-form-painted"))
        page.close()
    return {"cold": {"first_contentful_paint_ms": round(fcp[0], 1), "classify_form_painted_ms": round(form[0], 1)},
            "first_contentful_paint": summary(fcp[1:]), "classify_form_painted": summary(form[1:])}


def round_trip(page, title: str) -> tuple[float, float | None]:
    """One click on "Classer" to the result on screen; (round trip, the /predict request's own duration)."""
    page.evaluate("() => { performance.clearMeasures(); performance.clearResourceTimings(); }")
    page.get_by_label("Titre du produit (obligatoire)").fill(title)
    page.get_by_role("button", name="Classer", exact=True).click()
    page.locator("#classify-result").wait_for(state="visible")
    page.locator("#classify-submit:enabled").wait_for()
    total = page.evaluate("() => performance.getEntriesByName('classify-round-trip').at(-1).duration")
    request = page.evaluate("""() => { const r = performance.getEntriesByType('resource')
        .filter((e) => e.name.endsWith('/predict')).at(-1); return r ? r.responseEnd - r.startTime : null; }""")
    return total, request


def measure_round_trips(page, rounds: int, photo: bytes) -> dict:
    """Round trips without, then with a photo (one warm-up each, not counted)."""
    text = [round_trip(page, f"{TITLE} {i}")[0] for i in range(rounds + 1)][1:]
    page.get_by_label("Photo (facultative) : JPEG, PNG ou WebP").set_input_files(
        files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    with_photo = [round_trip(page, f"{TITLE} {i}") for i in range(rounds + 1)][1:]
    return {"round_trip_text": summary(text), "round_trip_photo": summary([t for t, _ in with_photo]),
            "predict_request": summary([r for _, r in with_photo if r is not None])}


def machine(chromium: str) -> dict:
    """Cores, CPU model and versions, for the README."""
    cpu = "unknown"
    if Path("/proc/cpuinfo").is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    # The user agent says 156.0.0.0 (reduced); the binary tells the full version.
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "chromium": version}


def write_results(results: dict, out_dir: Path) -> None:
    """console.json and a Markdown table console.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "console.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = [(name, results[name]) for name in
            ("first_contentful_paint", "classify_form_painted", "round_trip_text", "round_trip_photo", "predict_request")]
    lines = [f"Console in headless {results['machine']['chromium']}, {results['machine']['nproc']} cores "
             f"({results['machine']['cpu']}), models {results['model_version']} "
             f"({results['models_label'] or results['repo']}), {results['rounds']} rounds, 1-min load average "
             f"{results['load_average_1min'][0]} before, {results['load_average_1min'][1]} after.", "",
             "| measure | median ms | p95 ms | min ms | max ms |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {s['median_ms']} | {s['p95_ms']} | {s['min_ms']} | {s['max_ms']} |" for name, s in rows]
    cold = results["cold"]
    lines += ["", f"Cold first load: first contentful paint {cold['first_contentful_paint_ms']} ms, classify form "
                  f"painted {cold['classify_form_painted_ms']} ms."]
    (out_dir / "console.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="pipeline checkout with models/ and dvc.lock")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--models-label", default="", help="what the models are, for the report (e.g. tiny pipeline)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_console_") as workdir:
        tmp = Path(workdir)
        username, password = "bench", secrets.token_urlsafe(12)
        write_users_file(tmp / "users.json", {username: User(username, hash_password(password, 4))})
        env = server_env(args.repo.resolve(), tmp, predict_rate_limit="100000/minute",
                         token_rate_limit="1000/minute")
        with running_server(env, tmp) as base_url, chromium_context(tmp / "profile", args.chromium) as context:
            page = context.new_page()
            token = sign_in(page, base_url, username, password)
            version = page.evaluate("async () => (await (await fetch('/status')).json()).model_version")
            load_before = os.getloadavg()[0]
            results = {"machine": machine(args.chromium), "repo": str(args.repo.resolve()),
                       "models_label": args.models_label, "model_version": version, "rounds": args.rounds,
                       **measure_loads(context, base_url, token, args.rounds),
                       **measure_round_trips(page, args.rounds, product_photo())}
            results["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    write_results(results, args.out_dir)


if __name__ == "__main__":
    main()
