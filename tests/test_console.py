"""The web console in a real headless Chromium against a real uvicorn API on the tiny pipeline's models.

One server and one browser for the module. Every request any page makes is recorded, and the last
test checks that none left 127.0.0.1. Screenshots go to a temporary folder, and also to
RAKUTEN_CONSOLE_SCREENSHOTS when set (how docs/screenshots/ is refreshed).
"""

import base64
import io
import json
import os
import re
import shutil
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
from PIL import Image

from api_support import add_users, candidate_models, models_with_review, product_jpeg
from browser_support import chromium_binary, chromium_context, running_server, server_env
from server_utils import missing
from pipeline_utils import run
from rakuten_mm.monitoring.drift import DriftResult, FeatureDrift, drift_report
from rakuten_mm.serving.rollout import RolloutState, write_state
from rakuten_mm.serving.security import create_access_token

try:
    from playwright.sync_api import Page, expect
except ImportError:  # requirements-dev.txt pins it; under CI its absence fails the suite
    missing("the playwright package is not installed: pip install -r requirements-dev.txt")

# Low enough for one user to reach it quickly, high enough for the other tests' few predictions.
PREDICT_LIMIT = 20
BATCH_ROWS = 16  # 50 rows -> 4 requests: the progress bar moves
MAX_UPLOAD_BYTES = 300_000
CSV_ROWS = 50
XSS_TITLE = '<img src="x" onerror="window.__xss=1"><script>window.__xss=2</script> Piscine'
TIMEOUT_MS = 30_000


class Console:
    """The running server, its users, and the browser context whose requests are all recorded."""

    def __init__(self, base_url, env, users, context, shots, tmp):
        self.base_url, self.env, self.users, self.context, self.shots, self.tmp = base_url, env, users, context, shots, tmp
        self.requests: list[str] = []
        self.csp_errors: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))

    def page(self) -> Page:
        """A new tab (its own sessionStorage) that records CSP violations."""
        page = self.context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda message: self.csp_errors.append(message.text)
                if "Content Security Policy" in message.text else None)
        return page

    def signed_in(self, role: str = "user") -> Page:
        """A tab signed in as the user of that role (user, admin or flood)."""
        name, password = self.users[role]
        page = self.page()
        page.goto(f"{self.base_url}/console")
        page.get_by_label("Nom d'utilisateur").fill(name)
        page.get_by_label("Mot de passe").fill(password)
        page.get_by_role("button", name="Se connecter").click()
        expect(page.locator("#classify-form")).to_be_visible()
        return page

    def token(self, role: str = "user") -> str:
        """A token over HTTP, outside the browser."""
        name, password = self.users[role]
        response = httpx.post(f"{self.base_url}/token", data={"username": name, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def call(self, method: str, path: str, role: str = "user", headers: dict | None = None,
             **kwargs) -> httpx.Response:
        """One authenticated API call outside the browser (the reference the page is compared with)."""
        headers = {**(headers or {}), "Authorization": f"Bearer {self.token(role)}"}
        return httpx.request(method, f"{self.base_url}{path}", headers=headers, timeout=60, **kwargs)

    def screenshot(self, page: Page, name: str, full_page: bool = False, element: str | None = None) -> Path:
        """Save a PNG of the page or of one element in the test folder (and in RAKUTEN_CONSOLE_SCREENSHOTS when set)."""
        path = self.shots / name
        if element:
            page.locator(element).screenshot(path=path)
        else:
            page.screenshot(path=path, full_page=full_page)
        extra = os.environ.get("RAKUTEN_CONSOLE_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / name)
        return path


def write_drift_report(path: Path) -> None:
    """A drift report as the monitor writes it: the title length drifted, the missing-image rate did not."""
    result = DriftResult(500, 700, {
        "title_length": FeatureDrift("psi", 0.41, 0.2, n_reference=700, n_production=500),
        "image_missing": FeatureDrift("chi2", 1.2, 3.841459, n_reference=700, n_production=500),
    })
    path.write_text(json.dumps(drift_report(result)))


@pytest.fixture(scope="module")
def console(tiny_pipeline, tmp_path_factory):
    """The API on the tiny models (a user, an admin, a user to flood) and one Chromium for the module."""
    executable = chromium_binary()
    repo, _ = tiny_pipeline
    tmp = tmp_path_factory.mktemp("console")
    users = {role: next(iter(add_users(tmp / "users.json", prefix=role, admin=role == "admin").items()))
             for role in ("user", "admin", "flood")}
    write_drift_report(tmp / "drift.json")
    env = server_env(repo, tmp, predict_rate_limit=f"{PREDICT_LIMIT}/minute", batch_rate_limit="1000/minute",
                     token_rate_limit="1000/minute", console_batch_rows=str(BATCH_ROWS),
                     max_upload_bytes=str(MAX_UPLOAD_BYTES))
    with running_server(env, tmp) as base_url, chromium_context(tmp / "chromium-profile", executable) as context:
        shots = tmp / "screenshots"
        shots.mkdir()
        yield Console(base_url, env, users, context, shots, tmp)


def upload_photo(page: Page, data: bytes, name: str = "photo.jpg", mime: str = "image/jpeg") -> None:
    page.get_by_label("Photo (facultative) : JPEG, PNG ou WebP").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}])


def classify(page: Page, title: str) -> None:
    page.get_by_label("Titre du produit (obligatoire)").fill(title)
    page.get_by_role("button", name="Classer", exact=True).click()


def drop_photo(page: Page, data: bytes, name: str) -> None:
    """Drag-and-drop a file onto the drop zone, as a browser does (a DataTransfer holding the File)."""
    transfer = page.evaluate_handle(
        """([b64, name]) => { const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
           const transfer = new DataTransfer(); transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
           return transfer; }""", [base64.b64encode(data).decode(), name])
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


# --- the page and its headers ---

def test_the_pages_carry_a_strict_content_security_policy(console):
    for path in ("/console", "/docs", "/redoc", "/static/js/main.js"):
        response = httpx.get(f"{console.base_url}{path}")
        assert response.status_code == 200, path
        policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
        assert policy["script-src"] == "'self'", path  # no 'unsafe-inline', no 'unsafe-eval', no CDN
        assert policy["frame-ancestors"] == "'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
    page_html = httpx.get(f"{console.base_url}/console").text
    assert "<script>" not in page_html and "http" not in page_html.split("<body>")[1]


# --- one product ---

def test_sign_in_and_classify_from_the_text_alone_then_with_a_dropped_photo(console):
    page = console.signed_in()
    expect(page.locator("#account-name")).to_have_text(f"Connecté : {console.users['user'][0]}")
    title = "Piscine tubulaire ronde 3,05 m avec pompe de filtration"
    classify(page, title)
    expect(page.locator("#result-modalities")).to_have_text("texte seul (aucune photo)")
    served = httpx.get(f"{console.base_url}/status").json()["model_version"]
    expected = console.call("POST", "/predict", data={"designation": title}).json()
    expect(page.locator("#result-code")).to_have_text(f"code {expected['prdtypecode']}")
    expect(page.locator("#result-category")).to_have_text(expected["category"])
    expect(page.locator("#result-model")).to_have_text(f"version {served}, variante actuelle")
    expect(page.locator("#result-top5 li")).to_have_count(5)

    photo = product_jpeg(side=200, seed=3)
    drop_photo(page, photo, "piscine.jpg")
    expect(page.locator("#preview-image")).to_be_visible()
    expect(page.locator("#preview-name")).to_contain_text("piscine.jpg")
    classify(page, title)
    expect(page.locator("#result-modalities")).to_have_text("texte + photo")
    with_photo = console.call("POST", "/predict", data={"designation": title},
                              files={"image": ("p.jpg", photo, "image/jpeg")}).json()
    expect(page.locator("#result-code")).to_have_text(f"code {with_photo['prdtypecode']}")
    first = with_photo["top5"][0]
    expect(page.locator("#result-top5 li").first).to_contain_text(f"{first['category']} ({first['prdtypecode']})")
    console.screenshot(page, "console_classify.png", full_page=True)
    page.get_by_role("button", name="Retirer la photo").click()
    expect(page.locator("#preview")).to_be_hidden()
    page.close()


def test_refused_photos_get_a_readable_french_message(console):
    page = console.signed_in()
    cases = [
        (b"\xff\xd8\xff\xe0 not really a jpeg", "cassee.jpg", "image/jpeg", "La photo est illisible ou corrompue"),
        (Image.new("RGB", (8, 8), "red"), "anim.gif", "image/gif", "Format de photo non pris en charge"),
        (os.urandom(MAX_UPLOAD_BYTES + 1000), "enorme.jpg", "image/jpeg", "Le fichier est trop volumineux"),
    ]
    for data, name, mime, message in cases:
        if isinstance(data, Image.Image):
            buffer = io.BytesIO()
            data.save(buffer, "GIF")
            data = buffer.getvalue()
        upload_photo(page, data, name, mime)
        classify(page, "Lampe de chevet")
        expect(page.locator("#classify-message")).to_contain_text(message)
        expect(page.locator("#classify-result")).to_be_hidden()
    page.close()


def test_too_many_requests_says_how_long_to_wait(console):
    token = console.token("flood")
    for _ in range(PREDICT_LIMIT):
        httpx.post(f"{console.base_url}/predict", data={"designation": "Lampe"},
                   headers={"Authorization": f"Bearer {token}"})
    page = console.signed_in("flood")
    classify(page, "Lampe de chevet")
    expect(page.locator("#classify-message")).to_have_text(
        re.compile(r"^Trop de requêtes : réessayez dans \d+ s\.$"))
    page.close()


def test_markup_in_a_title_is_shown_as_text_and_runs_nothing(console):
    page = console.signed_in()
    classify(page, XSS_TITLE)
    expect(page.locator("#result-title")).to_have_text(XSS_TITLE)
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#classify-result img, #classify-result script").count() == 0
    page.close()


def relative_luminance(rgb: list[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(page: Page, selector: str) -> float:
    """Contrast of an element's text colour with the first opaque background behind it."""
    colours = page.locator(selector).first.evaluate("""(node) => {
        const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
        let back = node;
        while (back && rgb(getComputedStyle(back).backgroundColor)[3] === 0) back = back.parentElement;
        return [rgb(getComputedStyle(node).color), back ? rgb(getComputedStyle(back).backgroundColor) : [255, 255, 255]];
    }""")
    lighter, darker = sorted((relative_luminance(c[:3]) for c in colours), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_the_console_is_usable_from_the_keyboard_with_labels_and_readable_contrast(console):
    page = console.page()
    page.goto(f"{console.base_url}/console")
    name, password = console.users["user"]
    # The sign-in form has the focus: type, Tab, type, Enter.
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.locator("#classify-form")).to_be_visible()
    for _ in range(12):  # Tab through the page up to the status tab, then open it with Enter
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.section") == "status":
            break
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_be_visible()
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, textarea, select')]
        .filter((field) => field.labels.length === 0 && !field.getAttribute('aria-label')).map((field) => field.id)""")
    assert unlabelled == []
    for selector in ("h1", "#tabs button", "#status-refresh", ".card h3", "#drift-table td", ".help",
                     "button[type=submit]", "caption"):
        assert contrast_ratio(page, selector) >= 4.5, selector
    page.close()


# --- a file ---

@pytest.fixture(scope="module")
def products_csv(tiny_pipeline, console) -> tuple[Path, Path, pd.DataFrame]:
    """50 rows of the tiny data in the X_test_update.csv layout (one with a markup title), and a zip of their photos."""
    repo, _ = tiny_pipeline
    table = pd.read_csv(repo / "data" / "raw" / "X_train_update.csv", index_col=0).head(CSV_ROWS).copy()
    table.index = table.index + 1000  # indexes that are not row numbers
    table.iloc[7, table.columns.get_loc("designation")] = XSS_TITLE
    csv_path = console.tmp / "produits.csv"
    table.to_csv(csv_path)
    zip_path = console.tmp / "photos.zip"
    with zipfile.ZipFile(repo / "data" / "raw" / "images_train.zip") as source, \
            zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as photos:
        names = set(source.namelist())
        for row in table.itertuples():
            name = f"image_{row.imageid}_product_{row.productid}.jpg"
            if name in names:
                # The first photo is unreadable: the API makes that product text-only, and the table says so.
                data = source.read(name) if photos.namelist() else b"\xff\xd8 unreadable"
                photos.writestr(f"image_test/{name}", data)
    return csv_path, zip_path, table


def run_batch(page: Page, csv_path: Path, zip_path: Path | None = None) -> None:
    page.get_by_role("button", name="Classer un fichier").click()
    page.get_by_label("Fichier CSV au format X_test_update.csv", exact=False).set_input_files(csv_path)
    page.get_by_label("Photos des produits", exact=False).set_input_files(zip_path or [])
    page.get_by_role("button", name="Lancer la classification").click()
    expect(page.locator("#batch-message")).to_have_text("Classification terminée.")


def download_results(page: Page, tmp: Path) -> pd.DataFrame:
    with page.expect_download() as download:
        page.get_by_role("button", name="Télécharger le CSV de soumission", exact=False).click()
    path = tmp / download.value.suggested_filename
    download.value.save_as(path)
    assert path.read_text().splitlines()[0] == ",prdtypecode"
    return pd.read_csv(path, index_col=0)


def test_a_csv_of_50_products_is_classified_in_chunks_and_downloaded_as_a_submission(console, products_csv):
    csv_path, _, table = products_csv
    page = console.signed_in()
    run_batch(page, csv_path)
    expect(page.locator("#batch-progress")).to_have_attribute("value", str(CSV_ROWS))
    expect(page.locator("#batch-progress-text")).to_have_text(f"{CSV_ROWS} / {CSV_ROWS} produits classés")
    reference = console.call("POST", "/predict/batch", content=csv_path.read_bytes(),
                             headers={"Content-Type": "text/csv"})
    predictions = reference.json()["predictions"]
    expected = pd.Series({int(p["product_identifier"]): p["prdtypecode"] for p in predictions})
    downloaded = download_results(page, console.tmp)
    assert list(downloaded.index) == list(table.index)
    assert downloaded["prdtypecode"].to_dict() == expected.to_dict()

    # The table: 20 rows a page, the markup title as text, then only the low-confidence rows.
    expect(page.locator("#batch-table tbody tr")).to_have_count(20)
    expect(page.locator("#batch-page")).to_have_text("Page 1 sur 3")
    expect(page.locator("#batch-table tbody")).to_contain_text(XSS_TITLE)
    page.get_by_role("button", name="Page suivante").click()
    page.get_by_role("button", name="Page suivante").click()
    expect(page.locator("#batch-table tbody tr")).to_have_count(CSV_ROWS - 40)
    # A slider position (whole percents) that keeps some rows and hides others: the middle one of those.
    splits = [percent for percent in range(1, 100)
              if 0 < sum(p["probability"] < percent / 100 for p in predictions) < CSV_ROWS]
    assert splits, sorted(p["probability"] for p in predictions)
    percent = splits[len(splits) // 2]
    page.get_by_label("N'afficher que les produits dont la confiance est inférieure à").fill(str(percent))
    below = sum(p["probability"] < percent / 100 for p in predictions)
    expect(page.locator("#batch-caption")).to_have_text(f"{below} produit(s) affiché(s) sur {CSV_ROWS}")
    assert page.evaluate("() => window.__xss") is None
    page.get_by_label("N'afficher que les produits dont la confiance est inférieure à").fill("100")
    page.evaluate("() => window.scrollTo(0, 0)")
    console.screenshot(page, "console_batch.png")
    page.close()


def test_a_zip_of_photos_goes_with_the_csv(console, products_csv):
    csv_path, zip_path, table = products_csv
    page = console.signed_in()
    run_batch(page, csv_path, zip_path)
    with zipfile.ZipFile(zip_path) as photos:
        images = {Path(name).name: photos.read(name) for name in photos.namelist()}
    items = []
    for index, row in table.iterrows():
        image = images.get(f"image_{row.imageid}_product_{row.productid}.jpg")
        items.append({"designation": row.designation, "productid": int(row.productid), "imageid": int(row.imageid),
                      "description": None if pd.isna(row.description) else row.description,
                      "product_identifier": str(index),
                      "image_base64": base64.b64encode(image).decode() if image else None})
    predictions = console.call("POST", "/predict/batch", json=items).json()["predictions"]
    with_photo = sum("image" in p["modalities"] for p in predictions)
    assert CSV_ROWS // 2 < with_photo <= len(images) - 1  # our unreadable photo (and any the generator broke)
    expect(page.locator("#batch-table tbody")).to_contain_text("non (photo refusée, texte seul)")
    expect(page.locator("#batch-summary")).to_have_text(f"{CSV_ROWS} produits classés, dont {with_photo} avec photo.")
    downloaded = download_results(page, console.tmp)
    assert downloaded["prdtypecode"].to_dict() == {int(p["product_identifier"]): p["prdtypecode"] for p in predictions}
    page.close()


def served_threshold(base_url: str, threshold: float | None, timeout_s: float = 60) -> dict:
    """/status once the API serves models with this review threshold (a request reloads them after a rollout change)."""
    deadline = time.monotonic() + timeout_s
    while (status := httpx.get(f"{base_url}/status").json())["review_threshold"] != threshold:
        assert time.monotonic() < deadline, f"review threshold {threshold} not served within {timeout_s} s: {status}"
        time.sleep(0.2)
    return status


def test_the_table_shows_each_products_decision_and_the_batch_counts(console, tiny_pipeline, products_csv):
    repo, _ = tiny_pipeline
    csv_path, _, table = products_csv
    as_csv = {"content": csv_path.read_bytes(), "headers": {"Content-Type": "text/csv"}}
    before = httpx.get(f"{console.base_url}/status").json()
    # The tiny models' own threshold may file all 50 rows or none of them: serve the same models with a
    # threshold in the widest gap between the middle probabilities, so that the file gets both decisions.
    probabilities = sorted({p["probability"] for p in console.call("POST", "/predict/batch", **as_csv).json()["predictions"]})
    assert len(probabilities) >= 4, probabilities
    middle = range(len(probabilities) // 4, 3 * len(probabilities) // 4)
    low, high = max(((probabilities[i], probabilities[i + 1]) for i in middle), key=lambda pair: pair[1] - pair[0])
    threshold = (low + high) / 2
    reviewed = models_with_review(repo / "models", console.tmp / "reviewed" / "models", threshold)
    rollout_file = Path(console.env["RAKUTEN_API_ROLLOUT_FILE"])
    write_state(rollout_file, RolloutState(str(reviewed)))
    try:
        served_threshold(console.base_url, threshold)
        answer = console.call("POST", "/predict/batch", **as_csv).json()
        counts = answer["decisions"]
        assert counts["auto"] > 0 and counts["review"] > 0, counts
        labels = {"auto": "Classé automatiquement", "review": "À revoir"}
        expected = {p["product_identifier"]: labels[p["decision"]] for p in answer["predictions"]}
        assert list(expected) == [str(index) for index in table.index]

        page = console.signed_in()
        run_batch(page, csv_path)  # 4 requests of at most 16 products: the counts add up over them
        expect(page.locator("#batch-decisions")).to_have_text(
            f"Décisions : {counts['auto']} classé(s) automatiquement, {counts['review']} à revoir.")
        headers = page.locator("#batch-table thead th").all_text_contents()
        assert "Décision" in headers, headers
        index_column, decision_column = headers.index("Index"), headers.index("Décision")
        shown = {}
        for number in range(1, 4):  # 20 + 20 + 10 rows
            expect(page.locator("#batch-page")).to_have_text(f"Page {number} sur 3")
            cells = page.locator("#batch-table tbody tr").evaluate_all(
                "(rows, [i, d]) => rows.map((row) => [row.cells[i].textContent, row.cells[d].textContent])",
                [index_column, decision_column])
            shown.update(dict(cells))
            if number < 3:
                page.get_by_role("button", name="Page suivante").click()
        assert shown == expected
        page.close()
    finally:
        write_state(rollout_file, RolloutState(str(repo / "models")))
        assert served_threshold(console.base_url, before["review_threshold"])["model_version"] == before["model_version"]


# --- the session ---

def test_an_expired_token_brings_back_the_sign_in_form_with_a_message(console):
    page = console.page()
    page.goto(f"{console.base_url}/console")
    expired = create_access_token(console.users["user"][0], console.env["RAKUTEN_API_SECRET_KEY"], 1,
                                  now=datetime.now(UTC) - timedelta(minutes=5))
    page.evaluate("(token) => sessionStorage.setItem('rakuten-console-token', token)", expired)
    page.reload()
    expect(page.locator("#sign-in-message")).to_have_text("Votre session a expiré : reconnectez-vous pour continuer.")
    expect(page.locator("#sign-in-form")).to_be_visible()
    expect(page.locator("#classify")).to_be_hidden()
    assert page.evaluate("() => sessionStorage.getItem('rakuten-console-token')") is None
    page.close()


# --- the service status and the rollout ---

def evaluate_scores(repo: Path) -> dict:
    """The fusion model's test scores as the evaluate stage wrote them (either layout of metrics.json)."""
    metrics = json.loads((repo / "metrics" / "evaluate" / "metrics.json").read_text())
    return metrics.get("test", metrics)["fusion"]


def test_the_status_shows_version_drift_and_the_evaluation_without_rollout_actions_for_a_user(
        console, tiny_pipeline):
    repo, _ = tiny_pipeline
    page = console.signed_in()
    page.get_by_role("button", name="État du service").click()
    served = httpx.get(f"{console.base_url}/status").json()["model_version"]
    expect(page.locator("#status-model")).to_contain_text(served)
    expect(page.locator("#status-rollout")).to_contain_text("aucun : le modèle actuel sert tous les produits")
    drift_rows = page.locator("#drift-table tbody tr")
    expect(drift_rows).to_have_count(2)
    expect(drift_rows.filter(has_text="Longueur du titre")).to_contain_text("Dérive")
    expect(drift_rows.filter(has_text="Photo absente")).to_contain_text("Stable")
    fusion = page.locator(".evaluation[data-variant=current] table.scores tr", has_text="Fusion")
    f1 = f"{evaluate_scores(repo)['f1_weighted']:.3f}".replace(".", ",")
    expect(fusion).to_contain_text(f1)
    expect(page.locator(".evaluation .chart:not(.heatmap) rect.bar")).to_have_count(27)
    labels = page.locator(".evaluation .heatmap rect.cell").count()
    assert labels > 1 and int(labels ** 0.5) ** 2 == labels  # a square matrix
    expect(page.locator("#rollout-actions")).to_be_hidden()
    assert page.get_by_role("button", name="Promouvoir le candidat").count() == 0  # not in the accessibility tree
    console.screenshot(page, "console_status.png")
    console.screenshot(page, "console_evaluation.png", element=".evaluation[data-variant=current]")
    refused = console.call("POST", "/admin/rollout/promote")
    assert refused.status_code == 403
    page.close()


def loaded_candidate(base_url: str, timeout_s: float = 60) -> str:
    """The candidate's version once the API has loaded it.

    One request loads it while the others are answered with the models already loaded, so a page
    opened meanwhile would show no candidate.
    """
    deadline = time.monotonic() + timeout_s
    while (candidate := httpx.get(f"{base_url}/status").json()["candidate"]) is None:
        assert time.monotonic() < deadline, f"no candidate loaded within {timeout_s} s"
        time.sleep(0.2)
    return candidate["model_version"]


def test_an_admin_promotes_then_rolls_back_after_confirming(console, tiny_pipeline):
    repo, _ = tiny_pipeline
    before = httpx.get(f"{console.base_url}/status").json()["model_version"]
    candidate_dir = candidate_models(repo / "models", console.tmp / "candidate")
    write_state(Path(console.env["RAKUTEN_API_ROLLOUT_FILE"]),
                RolloutState(str(repo / "models"), candidate=str(candidate_dir), candidate_share=0.25))
    candidate = loaded_candidate(console.base_url)
    assert candidate != before
    page = console.signed_in("admin")
    page.get_by_role("button", name="État du service").click()
    expect(page.locator("#status-rollout")).to_contain_text("25 % des produits")

    page.get_by_role("button", name="Promouvoir le candidat").click()
    expect(page.get_by_role("dialog")).to_contain_text("Promouvoir le candidat ?")
    page.get_by_role("button", name="Annuler").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert httpx.get(f"{console.base_url}/status").json()["model_version"] == before

    page.get_by_role("button", name="Promouvoir le candidat").click()
    console.screenshot(page, "console_confirm.png")
    page.get_by_role("button", name="Confirmer").click()
    expect(page.locator("#status-message")).to_have_text(
        f"Candidat promu : la version {candidate} sert désormais tous les produits.")
    assert httpx.get(f"{console.base_url}/status").json()["model_version"] == candidate

    page.get_by_role("button", name="Revenir au modèle précédent").click()
    page.get_by_role("button", name="Confirmer").click()
    expect(page.locator("#status-message")).to_have_text(
        f"Retour effectué : la version {before} sert de nouveau tous les produits.")
    assert httpx.get(f"{console.base_url}/status").json()["model_version"] == before
    expect(page.get_by_role("button", name="Promouvoir le candidat")).to_be_disabled()
    page.close()


# --- the API documentation and DVC's plots, offline ---

def test_swagger_ui_and_redoc_render_from_local_files(console):
    page = console.page()
    page.goto(f"{console.base_url}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/predict/batch")).to_be_visible()
    page.goto(f"{console.base_url}/redoc")
    expect(page.get_by_role("heading", name="Predict a batch: a JSON list of products or a CSV file")).to_be_attached()
    page.close()


def test_dvc_plots_show_renders_offline_in_the_browser(console, tiny_pipeline):
    repo, _ = tiny_pipeline
    output = console.tmp / "dvc_plots"
    run(["dvc", "plots", "show", "-o", str(output)], repo, timeout=300)
    page = console.page()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.goto((output / "index.html").as_uri())
    charts = page.locator(".vega-embed canvas, .vega-embed svg.marks")
    expect(charts.first).to_be_visible()
    # A chart is non-empty when it painted something else than its white background.
    painted = page.evaluate("""() => [...document.querySelectorAll('.vega-embed canvas')].map((canvas) => {
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let ink = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && (data[i] < 200 || data[i + 1] < 200)) ink += 1;
        return ink; })""")
    assert max(painted) > 500, painted
    console.screenshot(page, "dvc_plots_offline.png")
    assert {urlsplit(url).scheme for url in seen} <= {"file", "data", "blob"}, seen
    page.close()


def test_no_request_left_the_server_and_no_policy_was_violated(console):
    # A visit of its own (signed-in console, Swagger UI, ReDoc), so that it checks something whichever
    # tests ran before it; the requests of those tests are checked too.
    page = console.signed_in("admin")
    page.goto(f"{console.base_url}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/predict/batch")).to_be_visible()
    page.goto(f"{console.base_url}/redoc")
    expect(page.get_by_role("heading", name="Predict a batch: a JSON list of products or a CSV file")).to_be_attached()
    page.close()
    base = urlsplit(console.base_url)
    outside = [url for url in console.requests
               if urlsplit(url).scheme not in ("blob", "data", "file") and urlsplit(url).netloc != base.netloc]
    assert console.requests and not outside, outside
    assert not console.csp_errors, console.csp_errors
