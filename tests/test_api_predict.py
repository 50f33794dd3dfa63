"""The prediction API through TestClient: every endpoint, and every bad input getting a clear 4xx."""

import base64
import io
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from api_support import add_users, product_jpeg, running_api
from rakuten_mm.categories import CATEGORY_NAMES, CODES
from rakuten_mm.serving.config import MIB, Settings
from rakuten_mm.serving.deployment import NO_IMAGE_NOTE

TITLE = "Piscine tubulaire ronde 3,05 m avec pompe de filtration"


@pytest.fixture(scope="module")
def api(tiny_pipeline, tmp_path_factory):
    """One app on the tiny pipeline's models, shared by the tests that leave no state behind."""
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path_factory.mktemp("api")) as running:
        yield running


@pytest.fixture(scope="module")
def small_api(tiny_pipeline, tmp_path_factory):
    """An app with small size limits, so that over-the-limit requests stay small."""
    repo, _ = tiny_pipeline
    limits = dict(max_upload_bytes=200_000, max_image_pixels=1_000_000, max_batch_size=3, max_batch_bytes=250_000)
    with running_api(repo, tmp_path_factory.mktemp("small"), **limits) as running:
        yield running


def predict(api, image: bytes | None = None, filename: str = "photo.jpg", params=None, **fields):
    """POST /predict with the default user's token."""
    data = {"designation": TITLE, **fields}
    files = {"image": (filename, image, "image/jpeg")} if image is not None else None
    return api.client.post("/predict", data=data, files=files, params=params, headers=api.auth)


def test_welcome_links_to_the_docs(api):
    body = api.client.get("/").json()
    assert body["message"].startswith("Bienvenue")
    for link in (body["docs"], body["redoc"], body["openapi"]):
        assert api.client.get(link).status_code == 200


def test_status_names_the_model_version_of_dvc_lock(api, tiny_pipeline):
    repo, _ = tiny_pipeline
    body = api.client.get("/status").json()
    assert body["status"] == "L'API fonctionne correctement" and body["models_loaded"] is True
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    expected = {out["path"]: out["md5"] for stage in ("tfidf", "train_text", "train_image", "train_baseline", "train_fusion")
                for out in lock[stage]["outs"] if out["path"].startswith("models/")}
    assert body["model_outs"] == expected
    assert set(expected) == {"models/tfidf", "models/text", "models/image", "models/baseline", "models/fusion"}
    assert len(body["model_version"]) == 12 and body["model_version"] != "unknown"


def test_predict_with_an_image_uses_both_modalities(api):
    response = predict(api, product_jpeg(), productid=123, imageid=456, product_identifier="sku-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["modalities"] == ["text", "image"] and body["note"] is None
    assert body["prdtypecode"] in CODES and body["category"] == CATEGORY_NAMES[body["prdtypecode"]]
    top = body["top5"]
    assert len(top) == 5 and top[0]["prdtypecode"] == body["prdtypecode"]
    assert top[0]["probability"] == body["probability"]
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    assert (body["productid"], body["imageid"], body["product_identifier"]) == (123, 456, "sku-1")
    assert body["probabilities"] is None
    assert body["model_version"] == api.client.get("/status").json()["model_version"]
    assert body["variant"] == "current"


def test_predict_without_an_image_says_it_used_the_text_alone(api):
    body = predict(api, description="").json()
    assert body["modalities"] == ["text"] and body["note"] == NO_IMAGE_NOTE


def test_an_empty_file_part_without_a_name_counts_as_no_image(api):
    # What a browser form sends when no file was chosen.
    response = api.client.post("/predict", data={"designation": TITLE},
                               files={"image": ("", b"", "application/octet-stream")}, headers=api.auth)
    assert response.status_code == 200 and response.json()["modalities"] == ["text"]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_are_accepted(api, fmt):
    response = predict(api, product_jpeg(300, fmt=fmt), filename=f"photo.{fmt.lower()}")
    assert response.status_code == 200 and response.json()["modalities"] == ["text", "image"]


def test_full_probabilities_on_request(api):
    body = predict(api, product_jpeg(), params={"include_probabilities": "true"}).json()
    probabilities = body["probabilities"]
    assert [p["prdtypecode"] for p in probabilities] == CODES
    assert sum(p["probability"] for p in probabilities) == pytest.approx(1.0, abs=1e-4)
    best = max(probabilities, key=lambda p: p["probability"])
    assert best["prdtypecode"] == body["prdtypecode"]


def test_missing_designation_is_422(api):
    response = api.client.post("/predict", data={"description": "sans titre"}, headers=api.auth)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "designation"]


def test_blank_designation_is_422(api):
    assert predict(api, designation="   ").status_code == 422


def test_non_integer_productid_is_422(api):
    assert predict(api, productid="abc").status_code == 422


@pytest.mark.parametrize("payload", [b"this is plain text, not an image", b"%PDF-1.4 not an image",
                                     b"GIF89a" + b"\x00" * 40])
def test_a_file_that_is_not_an_accepted_image_is_415(api, payload):
    response = predict(api, payload, filename="file.jpg")
    assert response.status_code == 415 and "not a JPEG/PNG/WEBP image" in response.json()["detail"]


def test_a_real_gif_is_415(api):
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), "red").save(buffer, "GIF")
    assert predict(api, buffer.getvalue(), filename="anim.gif").status_code == 415


def test_a_truncated_jpeg_is_422(api):
    response = predict(api, product_jpeg()[:3000])
    assert response.status_code == 422 and "cannot decode image" in response.json()["detail"]


def test_an_empty_named_file_is_422(api):
    assert predict(api, b"", filename="photo.jpg").status_code == 422


def test_an_image_over_the_upload_limit_is_413(small_api):
    # Over max_upload_bytes but within the body limit (which leaves room for the form fields).
    response = predict(small_api, b"\xff" * 300_000)
    assert response.status_code == 413 and "over the limit of 200000 bytes" in response.json()["detail"]


def test_a_body_over_the_declared_limit_is_413_without_reading_it(small_api):
    response = predict(small_api, b"\xff" * (small_api.settings.predict_body_limit + 1))
    assert response.status_code == 413 and "request body is" in response.json()["detail"]


def test_the_default_upload_limit_is_10_mib(api):
    # Exactly 10 MiB gets past the size check (then is refused as no image); one byte more does not.
    assert predict(api, b"\xff" * (10 * MIB)).status_code == 415
    assert predict(api, b"\xff" * (10 * MIB + 1)).status_code == 413


def test_a_decompression_bomb_is_413(small_api):
    # 2000 x 2000 pixels of one colour: a few kilobytes of PNG, 12 MB once decoded.
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 2000), "white").save(buffer, "PNG")
    assert len(buffer.getvalue()) < 100_000
    response = predict(small_api, buffer.getvalue(), filename="bomb.png")
    assert response.status_code == 413 and "over the limit of 1000000" in response.json()["detail"]


def test_batch_json_returns_one_prediction_per_product_in_order(api):
    products = [
        {"designation": TITLE, "image_base64": base64.b64encode(product_jpeg()).decode(), "productid": 1},
        {"designation": "Lot de 3 livres de poche", "description": "<p>Très bon état</p>", "productid": 2},
        {"designation": "Manette sans fil", "image_base64": "data:image/png;base64,"
         + base64.b64encode(product_jpeg(200, fmt="PNG")).decode(), "productid": 3},
    ]
    response = api.client.post("/predict/batch", json=products, headers=api.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3
    assert [p["row"] for p in body["predictions"]] == [0, 1, 2]
    assert [p["productid"] for p in body["predictions"]] == [1, 2, 3]
    assert [p["modalities"] for p in body["predictions"]] == [["text", "image"], ["text"], ["text", "image"]]


def test_batch_predictions_match_single_predictions(api):
    image = product_jpeg(seed=3)
    single = predict(api, image, params={"include_probabilities": "true"}).json()
    batch = api.client.post("/predict/batch", params={"include_probabilities": "true"}, headers=api.auth,
                            json=[{"designation": TITLE, "image_base64": base64.b64encode(image).decode()}]).json()
    got = np.array([p["probability"] for p in batch["predictions"][0]["probabilities"]])
    expected = np.array([p["probability"] for p in single["probabilities"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("as_multipart", [True, False])
def test_batch_csv_in_the_x_test_layout(api, tiny_pipeline, as_multipart):
    repo, _ = tiny_pipeline
    csv = (repo / "data/raw/X_test_update.csv").read_bytes()
    if as_multipart:
        response = api.client.post("/predict/batch", files={"file": ("X_test_update.csv", csv, "text/csv")},
                                   headers=api.auth)
    else:
        response = api.client.post("/predict/batch", content=csv, headers={**api.auth, "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    index = [line.split(",", 1)[0] for line in csv.decode().splitlines()[1:]]
    assert len(predictions) == 40
    assert [p["product_identifier"] for p in predictions][:5] == index[:5]
    assert all(p["modalities"] == ["text"] for p in predictions)


def test_batch_over_the_size_limit_is_413(small_api):
    response = small_api.client.post("/predict/batch", json=[{"designation": TITLE}] * 4, headers=small_api.auth)
    assert response.status_code == 413 and "over the limit of 3" in response.json()["detail"]


def test_csv_batch_over_the_size_limit_is_413(small_api, tiny_pipeline):
    repo, _ = tiny_pipeline
    csv = (repo / "data/raw/X_test_update.csv").read_bytes()
    response = small_api.client.post("/predict/batch", content=csv,
                                     headers={**small_api.auth, "Content-Type": "text/csv"})
    assert response.status_code == 413


def test_batch_body_over_the_byte_limit_is_413(small_api):
    big = [{"designation": TITLE, "description": "x" * 90_000}] * 3
    response = small_api.client.post("/predict/batch", json=big, headers=small_api.auth)
    assert response.status_code == 413


@pytest.mark.parametrize("body, expected", [
    ([], 422),
    ({"designation": TITLE}, 422),
    ([{"designation": ""}], 422),
    ([{"description": "no title"}], 422),
    ([{"designation": TITLE, "unknown_field": 1}], 422),
    ([{"designation": TITLE, "image_base64": "not base64 at all!"}], 422),
    ([{"designation": TITLE}] * 2 + [[]], 422),
])
def test_bad_json_batches_are_4xx(api, body, expected):
    response = api.client.post("/predict/batch", json=body, headers=api.auth)
    assert response.status_code == expected, response.text


def test_an_unreadable_image_makes_only_its_product_text_only(api):
    good = base64.b64encode(product_jpeg()).decode()
    corrupt = base64.b64encode(product_jpeg()[:2000]).decode()
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), "red").save(buffer, "GIF")  # a format make_dataset does not read either
    gif = base64.b64encode(buffer.getvalue()).decode()
    products = [{"designation": TITLE, "image_base64": image} for image in (good, corrupt, gif, good)]
    response = api.client.post("/predict/batch", headers=api.auth, json=products)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["modalities"] for p in predictions] == [["text", "image"], ["text"], ["text"], ["text", "image"]]
    assert predictions[0]["note"] is None and predictions[3]["note"] is None
    assert "cannot decode image" in predictions[1]["note"] and "not a JPEG/PNG/WEBP image" in predictions[2]["note"]
    text_only = api.client.post("/predict/batch", headers=api.auth, json=[{"designation": TITLE}]).json()
    expected = text_only["predictions"][0]["top5"]
    assert [c["prdtypecode"] for c in predictions[1]["top5"]] == [c["prdtypecode"] for c in expected]
    np.testing.assert_allclose([c["probability"] for c in predictions[1]["top5"]],
                               [c["probability"] for c in expected], atol=1e-6)


def test_a_batch_is_refused_at_the_first_product_too_many_without_reading_on(small_api):
    # Three products fit; the fourth is refused before the body's broken tail is parsed.
    body = ("[" + ",".join([json.dumps({"designation": TITLE})] * 4) + ", this is not JSON").encode()
    response = small_api.client.post("/predict/batch", content=body,
                                     headers={**small_api.auth, "Content-Type": "application/json"})
    assert response.status_code == 413 and "over the limit of 3" in response.json()["detail"]
    rows = "".join(f'{i},"{TITLE}",,1{i},2{i}\n' for i in range(4))
    csv = f",designation,description,productid,imageid\n{rows}5,\"never closed".encode()
    response = small_api.client.post("/predict/batch", content=csv,
                                     headers={**small_api.auth, "Content-Type": "text/csv"})
    assert response.status_code == 413 and "over the limit of 3" in response.json()["detail"]


def test_a_batch_product_larger_than_any_valid_one_is_refused_while_reading(api):
    # Longer than the largest image in base64 plus the longest texts: refused before it is parsed.
    huge = json.dumps([{"designation": TITLE}, {"designation": TITLE, "description": "x" * 15_000_000}])
    response = api.client.post("/predict/batch", content=huge.encode(),
                               headers={**api.auth, "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["detail"].startswith("row 1: product is over the limit")


@pytest.mark.parametrize("designation, field", [('""', "designation"), ('"   "', "designation"),
                                                ("x" * 1001, "designation")])
def test_csv_rows_get_the_json_validation(api, designation, field):
    csv = f',designation,description,productid,imageid\n7,"{TITLE}",,1,2\n8,{designation},desc,3,4\n'.encode()
    response = api.client.post("/predict/batch", content=csv, headers={**api.auth, "Content-Type": "text/csv"})
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", 1, field]]


@pytest.mark.parametrize("content, content_type, expected", [
    (b"{not json", "application/json", 422),
    (b"a,b\n1,2\n", "text/csv", 422),
    (b"\xff\xfe\x00garbage", "text/csv", 422),
    (b"designation=x", "application/x-www-form-urlencoded", 415),
    (b"hello", "text/plain", 415),
])
def test_bad_batch_bodies_are_4xx(api, content, content_type, expected):
    response = api.client.post("/predict/batch", content=content, headers={**api.auth, "Content-Type": content_type})
    assert response.status_code == expected, response.text


def test_multipart_batch_without_a_file_is_422(api):
    response = api.client.post("/predict/batch", files={"other": ("x.csv", b"a", "text/csv")}, headers=api.auth)
    assert response.status_code == 422


def test_predict_rate_limit_is_per_user_with_retry_after(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, predict_rate_limit="3/minute") as limited:
        for _ in range(3):
            assert predict(limited).status_code == 200
        refused = predict(limited)
        assert refused.status_code == 429
        assert "Too many requests" in refused.json()["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # Another user has a budget of their own.
        (name, password), = add_users(limited.settings.users_file, prefix="other").items()
        token = limited.token(name, password)
        response = limited.client.post("/predict", data={"designation": TITLE},
                                       headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


def test_default_rate_limits_refuse_the_11th_prediction_and_the_6th_token_in_a_minute(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    # The app as configured by default (the other tests raise the limits out of the way).
    defaults = {name: Settings.model_fields[name].default for name in ("predict_rate_limit", "token_rate_limit")}
    with running_api(repo, tmp_path, **defaults) as limited:
        assert [predict(limited).status_code for _ in range(11)] == [200] * 10 + [429]
        # predict() above took one token already.
        credentials = {"username": limited.username, "password": limited.password}
        assert [limited.client.post("/token", data=credentials).status_code for _ in range(5)] == [200] * 4 + [429]


def test_metrics_cover_http_and_model(api):
    predict(api, product_jpeg())
    predict(api)
    text = api.metrics()
    assert 'http_requests_total{handler="/predict",method="POST",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{handler="/predict"' in text
    version = api.client.get("/status").json()["model_version"]
    assert f'rakuten_model_inference_seconds_bucket{{endpoint="predict",le="0.0005",model_version="{version}"}}' in text
    assert f'rakuten_predictions_total{{model_version="{version}",prdtypecode=' in text
    assert f'rakuten_predictions_without_image_total{{endpoint="predict",model_version="{version}"}}' in text
    assert f'variant="current",version="{version}"}} 1.0' in text and "rakuten_model_info{" in text


def test_request_id_is_honoured_or_created(api):
    given = api.client.get("/status", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = api.client.get("/status", headers={"X-Request-ID": "bad id\twith spaces"})
    assert made.headers["X-Request-ID"] != "bad id\twith spaces" and len(made.headers["X-Request-ID"]) == 32


def test_one_json_log_line_per_request_without_secrets(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    # Its own app: logging is process-wide, and the last app built owns the log file.
    with running_api(repo, tmp_path) as logged:
        token = logged.token()
        logged.client.post("/predict", params={"include_probabilities": "true"}, data={"designation": TITLE},
                           files={"image": ("secret-name.jpg", product_jpeg(), "image/jpeg")},
                           headers={"Authorization": f"Bearer {token}", "X-Request-ID": "log-test-1"})
        logged.client.post("/token", data={"username": logged.username, "password": "wrong-" + logged.password})
    text = (tmp_path / "logs" / "api.log").read_text()
    for secret in (token, logged.password, "include_probabilities", "secret-name", TITLE):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    entry = next(line for line in lines if line.get("request_id") == "log-test-1")
    assert entry["method"] == "POST" and entry["path"] == "/predict" and entry["status"] == 200
    assert entry["duration_ms"] > 0 and entry["user"] == logged.username
    assert [line["status"] for line in lines if line.get("path") == "/token"] == [200, 401]
