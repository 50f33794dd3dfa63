"""The console's review page in a real headless Chromium against a real uvicorn API: a queue worked by keyboard only.

The API serves a copy of the tiny pipeline's models without the review block their train_fusion wrote,
so every product predicted goes to the queue. The test
checks the decisions the database recorded and the admin export read back through the real importer.
The page's screenshot also goes to RAKUTEN_CONSOLE_SCREENSHOTS when set (docs/screenshots/review.png).
"""

import base64
import io
import os
import shutil
import time
import zipfile

import httpx
import pytest

from api_support import add_users, models_without_review, product_jpeg
from browser_support import chromium_binary, chromium_context, running_server, server_env
from rakuten_mm.categories import CODES
from rakuten_mm.data.importers import import_from_dir
from rakuten_mm.data.raw_layout import read_labelled
from rakuten_mm.data.synthetic import DEFAULT_FILES
from rakuten_mm.serving.review import decision_log
from server_utils import missing

try:
    from playwright.sync_api import expect
except ImportError:  # requirements-dev.txt pins it; under CI its absence fails the suite
    missing("the playwright package is not installed: pip install -r requirements-dev.txt")

XSS_TITLE = '<img src="x" onerror="window.__xss=1"><script>window.__xss=2</script> Piscine gonflable'
PRODUCTS = [
    {"designation": "Piscine tubulaire ronde 3,05 m avec pompe", "description": "Structure acier, liner bleu"},
    {"designation": "Figurine Dragon Ball Z Goku 18 cm"},
    {"designation": XSS_TITLE, "description": "<b>gras</b> & <i>italique</i>"},
    {"designation": "Lot de 3 romans policiers"},
    {"designation": "Chaise de jardin pliante en aluminium"},
    {"designation": "Manette sans fil pour console"},
]
TIMEOUT_MS = 30_000


def tokens(base_url: str, name: str, password: str) -> dict:
    response = httpx.post(f"{base_url}/token", data={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def wait_until(check, timeout: float = 15.0):
    """check()'s first truthy value, polled (fails after timeout)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


@pytest.fixture(scope="module")
def review_server(tiny_pipeline, tmp_path_factory):
    """The API on the tiny models with a reviewer and an admin, and a queue of six products."""
    executable = chromium_binary()
    repo, _ = tiny_pipeline
    tmp = tmp_path_factory.mktemp("review-console")
    reviewer = next(iter(add_users(tmp / "users.json", prefix="reviewer").items()))
    admin = next(iter(add_users(tmp / "users.json", prefix="admin", admin=True).items()))
    models = models_without_review(repo / "models", tmp / "unreviewed" / "models")
    env = server_env(repo, tmp, models_dir=str(models), predict_rate_limit="1000/minute",
                     batch_rate_limit="1000/minute", token_rate_limit="1000/minute")
    with running_server(env, tmp) as base_url:
        products = [{**product, "productid": 500 + i} for i, product in enumerate(PRODUCTS)]
        for product in products[:2]:
            product["image_base64"] = base64.b64encode(product_jpeg(side=400, seed=product["productid"])).decode()
        answer = httpx.post(f"{base_url}/predict/batch", json=products, headers=tokens(base_url, *reviewer), timeout=60)
        assert answer.status_code == 200 and answer.json()["decisions"] == {"auto": 0, "review": 6}, answer.text
        yield base_url, tmp, reviewer, admin, executable


def test_a_reviewer_works_the_queue_by_keyboard_and_the_export_holds_the_labels(review_server):
    base_url, tmp, (name, password), admin, executable = review_server
    auth = tokens(base_url, name, password)
    queue = wait_until(lambda: len(items := httpx.get(f"{base_url}/review/items", headers=auth).json()) == 6 and items)
    assert [item["probability"] for item in queue] == sorted(item["probability"] for item in queue)
    with chromium_context(tmp / "chromium-profile", executable) as context:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base_url}/console")
        page.get_by_label("Nom d'utilisateur").fill(name)
        page.get_by_label("Mot de passe").fill(password)
        page.keyboard.press("Enter")
        tab = page.get_by_role("button", name="Revue")
        expect(tab).to_be_visible()
        tab.focus()
        page.keyboard.press("Enter")
        title = page.locator("#review-product-title")
        expect(title).to_have_text(queue[0]["designation"])  # least confident first
        expect(page.locator("#review-list li")).to_have_count(6)
        top = page.locator("#review-top5 li")
        expect(top).to_have_count(5)
        expect(top.first).to_contain_text(f"{queue[0]['top5'][0]['category']} ({queue[0]['top5'][0]['prdtypecode']})")
        shot = tmp / "review.png"
        page.screenshot(path=shot)
        if os.environ.get("RAKUTEN_CONSOLE_SCREENSHOTS"):
            shutil.copy(shot, os.path.join(os.environ["RAKUTEN_CONSOLE_SCREENSHOTS"], "review.png"))

        expected = []  # (item id, chosen code) in the order the keys decide them
        page.keyboard.press("1")  # the first proposed code
        expected.append((queue[0]["id"], queue[0]["top5"][0]["prdtypecode"]))
        expect(title).to_have_text(queue[1]["designation"])
        page.keyboard.press("2")  # the second proposed code: a correction
        expected.append((queue[1]["id"], queue[1]["top5"][1]["prdtypecode"]))
        expect(title).to_have_text(queue[2]["designation"])
        page.keyboard.press("p")  # skip
        expected.append((queue[2]["id"], None))
        page.keyboard.press("ArrowDown")  # move on without deciding
        expect(title).to_have_text(queue[4]["designation"])
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowUp")  # back to the skipped product
        expect(title).to_have_text(queue[2]["designation"])
        expect(page.locator("#review-description")).to_have_text(queue[2]["description"] or "")
        # Markup in a product's text is shown as text, in the list and on the product, and never runs.
        expect(page.locator("#review-list")).to_contain_text(XSS_TITLE)
        assert page.evaluate("window.__xss") is None and page.locator("#review-list img, #review-list script").count() == 0
        page.keyboard.press("3")  # decided after all: the latest decision wins over the skip
        expected.append((queue[2]["id"], queue[2]["top5"][2]["prdtypecode"]))
        expect(title).to_have_text(queue[3]["designation"])
        page.keyboard.press("a")  # another of the 27 codes, from the list, by keyboard
        other = CODES.index(queue[3]["prdtypecode"])
        page.keyboard.press("ArrowDown" if other + 1 < len(CODES) else "ArrowUp")
        chosen = int(page.locator("#review-other").input_value())
        assert chosen != queue[3]["prdtypecode"]
        page.keyboard.press("Enter")
        expected.append((queue[3]["id"], chosen))
        expect(title).to_have_text(queue[4]["designation"])
        # One request fetched the whole queue: each next product was already in the page.
        assert sum("/review/items?" in url for url in requests) == 1

        log = wait_until(lambda: len(entries := decision_log(tmp / "review" / "queue.sqlite")) == 5 and entries)
        assert [(d["item_id"], d["chosen_code"]) for d in log] == expected
        assert {d["reviewer"] for d in log} == {name}
        assert [d["predicted_code"] for d in log] == [queue[0]["prdtypecode"], queue[1]["prdtypecode"],
                                                      queue[2]["prdtypecode"], queue[2]["prdtypecode"],
                                                      queue[3]["prdtypecode"]]
        # The filter shows only the waiting products of one predicted class.
        left = [item for item in queue[4:]]
        page.locator("#review-filter").select_option(str(left[0]["prdtypecode"]))
        expect(page.locator("#review-list li")).to_have_count(
            sum(item["prdtypecode"] == left[0]["prdtypecode"] for item in left))
        page.close()

    response = httpx.post(f"{base_url}/admin/review/export", headers=tokens(base_url, *admin))
    assert response.status_code == 200, response.text
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(tmp / "corrections")
    import_from_dir(tmp / "corrections", tmp / "raw", DEFAULT_FILES)
    labelled = read_labelled(tmp / "raw" / DEFAULT_FILES["x_train"], tmp / "raw" / DEFAULT_FILES["y_train"])
    latest = {item_id: code for item_id, code in expected if code is not None}
    by_id = {item["id"]: item for item in queue}
    assert sorted(zip(labelled["productid"], labelled["prdtypecode"])) == sorted(
        (by_id[item_id]["productid"], code) for item_id, code in latest.items())
