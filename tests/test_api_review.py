"""The review loop's API: decision and threshold on every answer, the review queue and its limits, decisions, export.

Real app (lifespan, models of the tiny pipeline, SQLite queue) through FastAPI's TestClient; the queue's
writer thread is flushed by hand where a test needs its rows now.
"""

import base64
import csv
import io
import json
import sqlite3
import zipfile
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from api_support import (
    add_users, models_with_review, models_without_review, product_jpeg, running_api, shared_classifier,
)
from rakuten_mm.data.importers import import_from_dir
from rakuten_mm.data.raw_layout import image_filename, read_labelled
from rakuten_mm.data.synthetic import DEFAULT_FILES
from rakuten_mm.serving import review
from rakuten_mm.serving.rollout import RolloutState, write_state

TITLES = ["Piscine tubulaire ronde avec pompe", "Figurine Dragon Ball Z Goku 18 cm", "Lot de 3 romans policiers",
          "Chaise de jardin pliante en aluminium", "Manette sans fil pour console"]


def fused_top_probability(models_dir, title: str) -> float:
    """The top-1 fused probability of a text-only product, from the classifier itself (not through the API)."""
    classifier = shared_classifier(models_dir)
    text, description, image, has_image = classifier.prepare_product(title, None, None)
    fused = classifier.predict_proba([text], [description], image[None], np.array([has_image]))["fused"]
    return float(fused[0].max())


@pytest.fixture(scope="module")
def unreviewed(tiny_pipeline, tmp_path_factory):
    """The tiny models without the review block their train_fusion wrote: every product goes to review."""
    repo, _ = tiny_pipeline
    return models_without_review(repo / "models", tmp_path_factory.mktemp("unreviewed") / "models")


@pytest.fixture(scope="module")
def split_threshold(tiny_pipeline):
    """(a title above, a title below, a threshold between their probabilities)."""
    repo, _ = tiny_pipeline
    probabilities = sorted((fused_top_probability(repo / "models", title), title) for title in TITLES)
    (low, low_title), (high, high_title) = probabilities[0], probabilities[-1]
    assert high - low > 1e-4, probabilities  # the tiny models must tell these titles apart
    return high_title, low_title, (low + high) / 2


def predict(api, title: str, **fields) -> dict:
    response = api.client.post("/predict", data={"designation": title, **fields}, headers=api.auth)
    assert response.status_code == 200, response.text
    return response.json()


def flushed(api) -> None:
    """Write what the writer thread has not written yet."""
    api.client.app.state.review_queue.flush()


def queue_items(api, **params) -> list[dict]:
    response = api.client.get("/review/items", params=params, headers=api.auth)
    assert response.status_code == 200, response.text
    return response.json()


# --- decision and threshold ---

def test_a_product_above_the_threshold_is_filed_and_one_below_goes_to_review(tiny_pipeline, tmp_path, split_threshold):
    repo, _ = tiny_pipeline
    high_title, low_title, threshold = split_threshold
    models = models_with_review(repo / "models", tmp_path / "reviewed" / "models", threshold)
    with running_api(repo, tmp_path / "api", models_dir=models) as api:
        high, low = predict(api, high_title), predict(api, low_title)
        assert (high["decision"], high["threshold"]) == ("auto", threshold)
        assert (low["decision"], low["threshold"]) == ("review", threshold)
        assert high["probability"] >= threshold > low["probability"]
        assert api.client.get("/status").json()["review_threshold"] == threshold
        # JSON and CSV batches: each prediction decided, and both decisions counted.
        answer = api.client.post("/predict/batch", json=[{"designation": low_title}, {"designation": high_title},
                                                          {"designation": low_title}], headers=api.auth).json()
        assert [p["decision"] for p in answer["predictions"]] == ["review", "auto", "review"]
        assert answer["decisions"] == {"auto": 1, "review": 2}
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(["", "designation", "description", "productid", "imageid"])
        writer.writerow([0, high_title, "", 1, 11])
        writer.writerow([1, low_title, "", 2, 12])
        answer = api.client.post("/predict/batch", content=table.getvalue(),
                                 headers={**api.auth, "Content-Type": "text/csv"}).json()
        assert [(p["decision"], p["threshold"]) for p in answer["predictions"]] == [("auto", threshold),
                                                                                    ("review", threshold)]
        assert answer["decisions"] == {"auto": 1, "review": 1}
        # Prometheus counts decisions by model version (2 + 3 + 2 products above).
        version = high["model_version"]
        samples = {(s.labels["decision"], s.labels["model_version"]): s.value
                   for family in text_string_to_metric_families(api.metrics()) if family.name == "rakuten_decisions"
                   for s in family.samples if s.name == "rakuten_decisions_total"}
        assert samples == {("auto", version): 3.0, ("review", version): 4.0}
        # Only the products answered `review` are queued, once per product, least confident first.
        flushed(api)
        items = queue_items(api)
        # The JSON batch's two copies are one product (same text, no productid); the CSV row has its productid.
        assert [(item["designation"], item["productid"]) for item in items] == [(low_title, None), (low_title, 2)]


def test_models_without_a_review_block_send_everything_to_review(tiny_pipeline, tmp_path, unreviewed):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, models_dir=unreviewed) as api:
        answer = predict(api, TITLES[0])
        assert (answer["decision"], answer["threshold"]) == ("review", None)
        status = api.client.get("/status").json()
        assert status["review_threshold"] is None
        # Existing fields are all still there: new fields only.
        assert {"prdtypecode", "category", "probability", "top5", "modalities", "model_version", "variant"} <= set(answer)


def test_each_variant_of_an_ab_rollout_answers_with_its_own_threshold(tiny_pipeline, tmp_path, unreviewed):
    repo, _ = tiny_pipeline
    candidate = models_with_review(repo / "models", tmp_path / "candidate" / "models", 0.0)
    with running_api(repo, tmp_path / "api", models_dir=unreviewed) as api:
        write_state(api.settings.rollout_file, RolloutState(str(unreviewed), str(candidate), 1.0))
        status = api.client.get("/status").json()
        assert status["review_threshold"] is None and status["candidate"]["review_threshold"] == 0.0
        answer = predict(api, TITLES[1])
        assert (answer["variant"], answer["decision"], answer["threshold"]) == ("candidate", "auto", 0.0)


# --- the queue: what is kept, its limits, who reaches it ---

def test_the_queue_keeps_a_small_photo_and_the_top5_and_nothing_about_the_caller(tiny_pipeline, tmp_path, unreviewed):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, models_dir=unreviewed) as api:
        photo = product_jpeg(side=500, seed=3)
        answer = api.client.post("/predict", data={"designation": "Lampe de chevet", "description": "LED <b>douce</b>",
                                                   "productid": "77", "imageid": "770",
                                                   "product_identifier": "caller-ref-XYZ"},
                                 files={"image": ("lampe.jpg", photo, "image/jpeg")}, headers=api.auth).json()
        flushed(api)
        item, = queue_items(api)
        assert (item["designation"], item["description"], item["productid"], item["imageid"]) == (
            "Lampe de chevet", "LED <b>douce</b>", 77, 770)
        assert [(t["prdtypecode"], t["probability"]) for t in item["top5"]] == [
            (t["prdtypecode"], t["probability"]) for t in answer["top5"]]
        assert item["top5"][0]["category"] == answer["top5"][0]["category"]
        assert item["model_version"] == answer["model_version"] and item["status"] == "pending"
        header, encoded = item["photo"].split(",", 1)
        assert header == "data:image/jpeg;base64"
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as small:
            assert small.format == "JPEG" and max(small.size) <= 160
        stored = api.settings.review_database.read_bytes()
        for caller in (api.username.encode(), b"caller-ref-XYZ", b"testclient"):
            assert caller not in stored


def test_waiting_products_past_the_retention_are_dropped_but_reviewed_ones_stay(tiny_pipeline, tmp_path, unreviewed):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, review_retention_days=2, models_dir=unreviewed) as api:
        for productid, title in enumerate(TITLES[:3]):
            predict(api, title, productid=str(productid))
        flushed(api)
        first = queue_items(api)[0]
        response = api.client.post(f"/review/items/{first['id']}/decision", json={"prdtypecode": 2583},
                                   headers=api.auth)
        assert response.status_code == 200, response.text
        queue = api.client.app.state.review_queue
        queue.flush(now=datetime.now(UTC) + timedelta(days=1))
        assert len(queue_items(api)) == 2  # within the retention
        queue.flush(now=datetime.now(UTC) + timedelta(days=3))
        assert queue_items(api) == []
        tables = export_tables(api, tmp_path / "export")
        assert tables["prdtypecode"].tolist() == [2583]


def test_the_size_cap_keeps_the_newest_waiting_products(tiny_pipeline, tmp_path, unreviewed):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, review_max_pending=3, models_dir=unreviewed) as api:
        for productid, title in enumerate(TITLES):
            predict(api, title, productid=str(productid))
            flushed(api)
        assert sorted(item["productid"] for item in queue_items(api)) == [2, 3, 4]
        assert api.client.get("/review/summary", headers=api.auth).json()["pending"] == 3


def test_only_signed_in_users_reach_the_queue_and_only_admins_export_or_roll_out(tiny_pipeline, tmp_path, unreviewed):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, models_dir=unreviewed) as api:
        predict(api, TITLES[0])
        flushed(api)
        item_id = queue_items(api)[0]["id"]
        forged = {"Authorization": "Bearer not-a-token"}
        for headers in ({}, forged):
            assert api.client.get("/review/items", headers=headers).status_code == 401
            assert api.client.get("/review/summary", headers=headers).status_code == 401
            assert api.client.post(f"/review/items/{item_id}/decision", json={"prdtypecode": 10},
                                   headers=headers).status_code == 401
            assert api.client.post("/admin/review/export", headers=headers).status_code == 401
        # A reviewer who is not an admin reviews, but neither exports nor touches the rollout.
        assert api.client.post("/admin/review/export", headers=api.auth).status_code == 403
        assert api.client.post("/admin/rollout/promote", headers=api.auth).status_code == 403
        assert api.client.post(f"/review/items/{item_id}/decision", json={"prdtypecode": 10},
                               headers=api.auth).status_code == 200
        assert api.client.post(f"/review/items/{item_id}/decision", json={"prdtypecode": 11},
                               headers=api.auth).status_code == 422  # not one of the 27 codes
        assert api.client.post("/review/items/999999/decision", json={"prdtypecode": 10},
                               headers=api.auth).status_code == 404
        assert api.client.post("/admin/review/export", headers=api.add_admin()).status_code == 200


def test_product_text_comes_back_as_json_text_never_as_markup(tiny_pipeline, tmp_path, unreviewed):
    repo, _ = tiny_pipeline
    title = '<img src=x onerror="alert(1)"><script>alert(2)</script> Piscine'
    with running_api(repo, tmp_path, models_dir=unreviewed) as api:
        predict(api, title, description="</textarea><svg onload=alert(3)>")
        flushed(api)
        response = api.client.get("/review/items", headers=api.auth)
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-content-type-options"] == "nosniff"
        item, = response.json()
        assert (item["designation"], item["description"]) == (title, "</textarea><svg onload=alert(3)>")
        # The console page itself never holds a product's text: its script inserts it as text.
        page = api.client.get("/console").text
        assert "alert(" not in page and "onerror" not in page
        assert "script-src 'self'" in api.client.get("/console").headers["content-security-policy"]


# --- decisions and the export ---

def export_tables(api, out_dir) -> pd.DataFrame:
    """Run the export command on the app's database, import the folder with the real importer, read it back."""
    code = review.main(["export", "--out", str(out_dir), "--database", str(api.settings.review_database),
                        "--params", str(out_dir / "no-params.yaml")])
    assert code == 0
    return export_tables_from(out_dir)


def test_decisions_are_append_only_the_latest_wins_and_the_export_imports(tiny_pipeline, tmp_path, unreviewed, capsys):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, models_dir=unreviewed) as api:
        (other, password), = add_users(api.settings.users_file, prefix="second").items()
        second = {"Authorization": f"Bearer {api.token(other, password)}"}
        photo = product_jpeg(side=400, seed=5)
        api.client.post("/predict", data={"designation": "Tente de camping 4 places", "productid": "4242",
                                          "imageid": "9191"},
                        files={"image": ("tente.jpg", photo, "image/jpeg")}, headers=api.auth)
        predict(api, "Coffret de feutres", description="24 couleurs")  # no ids
        predict(api, "Produit passé")  # skipped only: not exported
        flushed(api)
        items = {item["designation"]: item for item in queue_items(api)}
        tent, pens, skipped = (items[name]["id"] for name in ("Tente de camping 4 places", "Coffret de feutres",
                                                               "Produit passé"))

        def decide(item_id, code, headers):
            response = api.client.post(f"/review/items/{item_id}/decision", json={"prdtypecode": code}, headers=headers)
            assert response.status_code == 200, response.text
            return response.json()

        first = decide(tent, 2060, api.auth)
        decide(tent, 2582, second)  # a second reviewer: kept, and the latest wins
        decide(tent, None, api.auth)  # a later skip does not undo a label
        decide(pens, 2522, second)
        assert decide(skipped, None, api.auth)["action"] == "skip"
        assert first["reviewer"] == api.username and first["chosen_code"] == 2060
        assert first["predicted_code"] == items["Tente de camping 4 places"]["prdtypecode"]
        log = review.decision_log(api.settings.review_database)
        assert [(d["item_id"], d["reviewer"], d["chosen_code"]) for d in log] == [
            (tent, api.username, 2060), (tent, other, 2582), (tent, api.username, None), (pens, other, 2522),
            (skipped, api.username, None)]
        with sqlite3.connect(api.settings.review_database) as db, pytest.raises(sqlite3.DatabaseError, match="append"):
            db.execute("UPDATE decisions SET chosen_code = 10")
        assert queue_items(api) == []  # decided and skipped products leave the list

        imported = export_tables(api, tmp_path / "export")
        assert "exported 2 rows and 1 photos" in capsys.readouterr().out
        assert imported["prdtypecode"].tolist() == [2582, 2522]
        assert imported["productid"].tolist() == [4242, 9_000_000_000 + pens]
        assert imported["imageid"].tolist() == [9191, 9_000_000_000 + pens]
        assert imported.index.tolist() == [9_000_000_000 + tent, 9_000_000_000 + pens]
        assert imported.loc[9_000_000_000 + pens, "description"] == "24 couleurs"
        with zipfile.ZipFile(tmp_path / "export-raw" / DEFAULT_FILES["images_train"]) as archive:
            assert archive.namelist() == [image_filename(9191, 4242)]
            with Image.open(io.BytesIO(archive.read(image_filename(9191, 4242)))) as small:
                assert max(small.size) <= 160

        # The admin endpoint answers the same folder as a zip; ids are stable from one export to the next.
        response = api.client.post("/admin/review/export", headers=api.add_admin())
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        folder = tmp_path / "download"
        zipfile.ZipFile(io.BytesIO(response.content)).extractall(folder)
        again = export_tables_from(folder)
        pd.testing.assert_frame_equal(again, imported)


def export_tables_from(folder) -> pd.DataFrame:
    """A corrections folder through the real `import` code, read back as the pipeline reads data/raw."""
    raw = folder.parent / f"{folder.name}-raw"
    import_from_dir(folder, raw, DEFAULT_FILES)
    return read_labelled(raw / DEFAULT_FILES["x_train"], raw / DEFAULT_FILES["y_train"])


def test_the_drift_report_says_which_share_went_to_review(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path) as api:
        api.settings.drift_report.write_text(json.dumps({"generated_at": "2025-06-01T10:00:00+00:00", "status": "ok",
                                                         "n_production": 40, "drift_detected": False,
                                                         "review_share": 0.25, "features": {}}))
        assert api.client.get("/reports/drift", headers=api.auth).json()["review_share"] == 0.25
        assert "rakuten_review_share 0.25" in api.metrics()
