"""Every route answers as it did: status, JSON shape and fixed texts, compared with a recorded file.

tests/data/api_answers.json was recorded on the code before the serving package was restructured
(issue 20), with `RECORD_API_ANSWERS=1 pytest tests/test_api_answers.py`. Values that differ from
one tiny-pipeline run to the next (model versions, probabilities, predicted codes, tokens, times)
are replaced by their type; everything else must be equal. The OpenAPI document must keep every
path, operation and schema it had (new ones may be added).
"""

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from api_support import product_jpeg, running_api

GOLDEN = Path(__file__).parent / "data" / "api_answers.json"
RECORD = os.environ.get("RECORD_API_ANSWERS") == "1"
# Keys whose values depend on the trained models or the clock: compared by type only.
VOLATILE_KEYS = {"model_version", "current", "candidate", "served_version", "served_candidate_version",
                 "access_token", "probability", "prdtypecode", "category", "updated_at", "previous",
                 "model_outs", "metrics", "confusion_matrix", "matches_served",
                 # The review rule follows the trained models too: their threshold, so each decision.
                 "threshold", "review_threshold", "decision", "decisions"}
HEADERS_KEPT = ("content-type", "www-authenticate", "retry-after", "content-security-policy",
                "x-content-type-options", "x-frame-options", "referrer-policy")
TITLE = "Piscine tubulaire ronde 3,05 m avec pompe de filtration"
CSV = ",designation,description,productid,imageid\n7,Lot de 3 romans,,11,12\n8,Manette sans fil,Noire,13,14\n"


def shape(value, key: str | None = None):
    """The value with its volatile parts replaced by their type names."""
    if key in VOLATILE_KEYS and value is not None:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(item, key) for item in value]
    return value


def answer(response) -> dict:
    """Status, the security and content headers, and the body (JSON shape, or a digest of other bodies)."""
    headers = {name: response.headers.get(name) for name in HEADERS_KEPT if name in response.headers}
    if headers.get("content-type", "").startswith("application/json"):
        body = shape(response.json())
    else:
        body = hashlib.sha256(response.content).hexdigest()
    return {"status": response.status_code, "headers": headers, "body": body}


def exchanges(api) -> dict:
    """The recorded requests, each by name, and what they were answered."""
    client, auth, admin = api.client, api.auth, api.add_admin()
    photo = product_jpeg()
    image = {"image": ("photo.jpg", photo, "image/jpeg")}
    one = {"designation": TITLE, "productid": "5"}
    batch = [{"designation": TITLE, "productid": 1, "image_base64": base64.b64encode(photo).decode()},
             {"designation": "Lot de 3 romans policiers"}]
    return {
        "welcome": client.get("/"),
        "status": client.get("/status"),
        "token_wrong_password": client.post("/token", data={"username": api.username, "password": "wrong"}),
        "token": client.post("/token", data={"username": api.username, "password": api.password}),
        "me": client.get("/me", headers=auth),
        "me_anonymous": client.get("/me"),
        "me_bad_token": client.get("/me", headers={"Authorization": "Bearer not.a.token"}),
        "predict_image": client.post("/predict", data=one, files=image, headers=auth),
        "predict_text": client.post("/predict", data=one, headers=auth),
        "predict_probabilities": client.post("/predict", data=one, headers=auth,
                                             params={"include_probabilities": "true"}),
        "predict_anonymous": client.post("/predict", data=one),
        "predict_no_designation": client.post("/predict", data={"productid": "5"}, headers=auth),
        "predict_not_an_image": client.post("/predict", data=one, headers=auth,
                                            files={"image": ("a.jpg", b"GIF89a" + b"\0" * 40, "image/gif")}),
        "predict_truncated": client.post("/predict", data=one, headers=auth,
                                         files={"image": ("a.jpg", photo[:300], "image/jpeg")}),
        "batch_json": client.post("/predict/batch", json=batch, headers=auth),
        "batch_csv": client.post("/predict/batch", content=CSV, headers={**auth, "Content-Type": "text/csv"}),
        "batch_bad_type": client.post("/predict/batch", content="x", headers={**auth, "Content-Type": "text/plain"}),
        "batch_bad_row": client.post("/predict/batch", json=[{"designation": " "}], headers=auth),
        "batch_anonymous": client.post("/predict/batch", json=batch),
        "reports_drift": client.get("/reports/drift", headers=auth),
        "reports_evaluation": client.get("/reports/evaluation", headers=auth),
        "admin_rollout_user": client.get("/admin/rollout", headers=auth),
        "admin_rollout": client.get("/admin/rollout", headers=admin),
        "admin_promote_nothing": client.post("/admin/rollout/promote", headers=admin),
        "admin_reload": client.post("/admin/reload", headers=admin),
        "console": client.get("/console"),
        "docs": client.get("/docs"),
        "redoc": client.get("/redoc"),
        "not_found": client.get("/no/such/page"),
    }


def test_every_route_answers_as_recorded(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path / "api") as api:
        answers = {name: answer(response) for name, response in exchanges(api).items()}
        openapi = api.client.get("/openapi.json").json()
    if RECORD:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"answers": answers, "openapi": openapi}, indent=1, ensure_ascii=False) + "\n")
        pytest.skip(f"recorded {GOLDEN}")
    recorded = json.loads(GOLDEN.read_text())
    for name, expected in recorded["answers"].items():
        assert answers[name] == expected, name
    for path, operations in recorded["openapi"]["paths"].items():
        assert openapi["paths"].get(path) == operations, path
    for name, schema in recorded["openapi"]["components"]["schemas"].items():
        assert openapi["components"]["schemas"].get(name) == schema, name
