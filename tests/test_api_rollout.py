"""A/B rollout in the app: sticky routing, rollout command, admin reload, labelled metrics, drift series, logs."""

import json
import os
import subprocess
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api_support import candidate_models, product_jpeg, running_api
from pipeline_utils import REPO_ROOT
from rakuten_mm.features.tfidf import TfidfFeaturizer
from rakuten_mm.models.predictor import ProductClassifier
from rakuten_mm.models.sklearn_files import save_sklearn_model
from rakuten_mm.serving.deployment import ProductInput, routing_key, traffic_bucket
from rakuten_mm.serving.rollout import (
    RolloutError, RolloutState, main as rollout_main, promoted, read_state, rolled_back, write_state,
)
from rakuten_mm.serving.versions import ModelsNotFoundError

TITLE = "Piscine tubulaire ronde 3,05 m avec pompe de filtration"
PROFILE_FIELDS = {"title_length", "description_missing", "image_missing", "language"}


@pytest.fixture(scope="module")
def candidate_dir(tiny_pipeline, tmp_path_factory):
    """The tiny models with another fusion weight: same networks, another version."""
    repo, _ = tiny_pipeline
    return candidate_models(repo / "models", tmp_path_factory.mktemp("candidate") / "candidate")


@pytest.fixture
def api(tiny_pipeline, tmp_path):
    """A fresh app per test: each test moves its own rollout state."""
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path / "api") as running:
        yield running


@pytest.fixture
def rollout(api, monkeypatch, tmp_path):
    """Run the rollout command in-process against the app's rollout file, settings and models (no HTTP reload)."""
    monkeypatch.chdir(tmp_path)  # no developer .env is read
    for name in ("RAKUTEN_ROLLOUT_USER", "RAKUTEN_ROLLOUT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAKUTEN_API_MODELS_DIR", str(api.settings.models_dir))
    monkeypatch.setenv("RAKUTEN_API_DVC_LOCK", str(api.settings.dvc_lock))
    # Nothing listens on the discard port: `status` reports the API as unreachable, quickly.
    monkeypatch.setenv("RAKUTEN_ROLLOUT_API_URL", "http://127.0.0.1:9")

    def run(*args: str) -> int:
        return rollout_main([*args, "--file", str(api.settings.rollout_file), "--no-reload"])

    return run


def batch(api, products: list[dict]) -> list[dict]:
    """POST /predict/batch; the predictions."""
    response = api.client.post("/predict/batch", json=products, headers=api.auth)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def predict_with_image(api) -> dict:
    """Version and top 5 of one product with an image."""
    body = api.client.post("/predict", data={"designation": TITLE}, headers=api.auth,
                           files={"image": ("p.jpg", product_jpeg(), "image/jpeg")}).json()
    return {"model_version": body["model_version"], "top5": body["top5"]}


def wait_for_lines(path, count: int, timeout: float = 10) -> str:
    """The file's text once it holds `count` lines (fails after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.is_file() else ""
        if len(text.splitlines()) >= count or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def metric_samples(api, name: str) -> list:
    """The samples of one metric family in /metrics."""
    families = text_string_to_metric_families(api.metrics())
    return [sample for family in families if family.name == name for sample in family.samples]


# --- routing, as functions ---

def test_the_candidate_share_is_honoured_and_a_product_keeps_its_bucket():
    products = [ProductInput("x", productid=i) for i in range(20_000)]
    buckets = [traffic_bucket(p) for p in products]
    for share in (0.05, 0.1, 0.5):
        assert abs(sum(b < share for b in buckets) / len(buckets) - share) < 0.01
    # Sticky: the bucket depends on the id alone (so raising the share keeps the candidate's products).
    assert [traffic_bucket(ProductInput("other title", productid=i)) for i in range(100)] == buckets[:100]


BUCKETS_SCRIPT = """
from rakuten_mm.serving.deployment import routing_key, traffic_bucket
from rakuten_mm.serving.deployment import ProductInput
products = [ProductInput("Lampe", productid=i) for i in range(50)] + [ProductInput(f"Lampe {i}") for i in range(50)]
print([traffic_bucket(p) for p in products])
print([hash(routing_key(p)) for p in products])
"""


def test_a_product_keeps_its_bucket_across_processes_with_different_hash_seeds():
    # Workers and restarts are separate processes, each with its own str-hash salt.
    runs = [subprocess.Popen([sys.executable, "-c", BUCKETS_SCRIPT], cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONHASHSEED": seed}) for seed in ("1", "2")]
    (buckets_1, salted_1), (buckets_2, salted_2) = [run.communicate(timeout=300)[0].splitlines() for run in runs]
    assert salted_1 != salted_2  # the check can tell: Python's hash() differs between these two processes
    assert buckets_1 == buckets_2


def test_the_routing_key_is_the_product_id_else_the_identifier_else_the_title():
    assert routing_key(ProductInput(" Lampe ", productid=7, product_identifier="sku")) == "productid:7"
    assert routing_key(ProductInput(" Lampe ", product_identifier="sku")) == "product_identifier:sku"
    assert routing_key(ProductInput(" Lampe ")) == routing_key(ProductInput("Lampe", description="autre"))


def test_promote_and_rollback_need_something_to_go_to():
    with pytest.raises(RolloutError, match="no candidate"):
        promoted(RolloutState("models"))
    with pytest.raises(RolloutError, match="drop-candidate"):
        rolled_back(RolloutState("models", candidate="new", candidate_share=0.1))
    with pytest.raises(RolloutError, match="between 0 and 1"):
        RolloutState("models", candidate="new", candidate_share=1.5)


# --- the app ---

def test_a_share_of_products_goes_to_the_candidate_and_each_product_always_to_the_same_one(
        api, rollout, candidate_dir):
    current = api.client.get("/status").json()["model_version"]
    assert rollout("set-candidate", str(candidate_dir), "--share", "0.3") == 0
    response = api.client.get("/status")
    # Public: versions and md5s, never where the models live on disk.
    assert str(candidate_dir) not in response.text and str(api.settings.models_dir) not in response.text
    status = response.json()
    candidate = status["candidate"]["model_version"]
    assert candidate != current and status["candidate"]["share"] == 0.3 and status["model_version"] == current
    products = [{"designation": f"{TITLE} {i}", "productid": 1000 + i} for i in range(128)]
    first = batch(api, products)
    share = sum(p["variant"] == "candidate" for p in first) / len(first)
    assert 0.2 <= share <= 0.4, share
    assert {(p["variant"], p["model_version"]) for p in first} == {("current", current), ("candidate", candidate)}
    # The same products, in another order, alone or in a batch: each keeps its variant.
    again = {p["productid"]: p["variant"] for p in batch(api, products[::-1])}
    assert again == {p["productid"]: p["variant"] for p in first}
    for product in products[:10]:
        alone = api.client.post("/predict", data=product, headers=api.auth).json()
        assert alone["variant"] == again[product["productid"]]
    # Without ids, the title decides, the same way each time.
    titles = [{"designation": f"Produit sans identifiant {i}"} for i in range(60)]
    assert [p["variant"] for p in batch(api, titles)] == [p["variant"] for p in batch(api, titles)]
    assert {p["variant"] for p in batch(api, titles)} == {"current", "candidate"}


def test_promote_and_rollback_change_the_version_that_answers(api, rollout, candidate_dir):
    original = api.client.get("/status").json()["model_version"]
    assert rollout("set-candidate", str(candidate_dir), "--share", "0.5") == 0
    candidate = api.client.get("/status").json()["candidate"]["model_version"]
    assert rollout("promote") == 0
    status = api.client.get("/status").json()
    assert status["model_version"] == candidate and status["candidate"] is None
    answers = batch(api, [{"designation": TITLE, "productid": i} for i in range(20)])
    assert {(p["model_version"], p["variant"]) for p in answers} == {(candidate, "current")}
    state = read_state(api.settings.rollout_file, api.settings.models_dir)
    assert state.previous == str(api.settings.models_dir) and state.current == str(candidate_dir)
    assert rollout("rollback") == 0
    answers = batch(api, [{"designation": TITLE, "productid": i} for i in range(20)])
    assert {(p["model_version"], p["variant"]) for p in answers} == {(original, "current")}
    assert rollout("rollback") == 1  # nothing left to roll back to


def test_a_candidate_whose_featurizer_keeps_its_terms_in_the_skops_file_is_served(api, rollout, candidate_dir,
                                                                                    tmp_path):
    # Folders written before the featurizer's terms moved to their own JSON file (registered versions).
    older = candidate_models(candidate_dir, tmp_path / "older")
    featurizer = TfidfFeaturizer.load(older / "tfidf" / "featurizer.skops")
    (older / "tfidf" / "featurizer.vocabulary.json").unlink()
    save_sklearn_model(featurizer.union, older / "tfidf" / "featurizer.skops")
    assert rollout("set-candidate", str(older), "--share", "1.0") == 0
    answers = batch(api, [{"designation": TITLE, "productid": i} for i in range(5)])
    assert {p["variant"] for p in answers} == {"candidate"}


def test_rollout_status_names_each_folder_with_its_version(api, rollout, candidate_dir, capsys):
    current = api.client.get("/status").json()["model_version"]
    assert rollout("set-candidate", str(candidate_dir), "--share", "0.3") == 0
    candidate = api.client.get("/status").json()["candidate"]["model_version"]
    capsys.readouterr()
    assert rollout("status") == 0
    out = capsys.readouterr().out
    assert f"current:   {api.settings.models_dir} (version {current}, from dvc.lock)" in out
    assert f"candidate: {candidate_dir} (version {candidate}, from files), 30.0% of products" in out
    assert "API: cannot reach the API" in out
    assert rollout("status", "--json") == 0
    state = json.loads(capsys.readouterr().out)
    assert (state["candidate"], state["candidate_share"], state["previous"]) == (str(candidate_dir), 0.3, None)


def test_the_rollout_command_refuses_a_candidate_that_is_not_one(api, rollout, candidate_dir, tmp_path):
    assert rollout("set-candidate", str(api.settings.models_dir)) == 1  # the current folder itself
    copy = candidate_models(candidate_dir, tmp_path / "copy")
    (copy / "fusion" / "fusion.json").write_bytes((api.settings.models_dir / "fusion" / "fusion.json").read_bytes())
    assert rollout("set-candidate", str(copy)) == 1  # the same files elsewhere
    (copy / "text" / "model.keras").unlink()
    assert rollout("set-candidate", str(copy)) == 1  # incomplete
    assert rollout("set-candidate", str(candidate_dir), "--share", "2") == 1
    assert rollout("promote") == 1
    assert not api.settings.rollout_file.exists()
    assert api.client.get("/status").json()["candidate"] is None


def test_a_rollout_file_naming_broken_models_keeps_the_served_ones(api, tmp_path):
    served = api.client.get("/status").json()["model_version"]
    api.settings.rollout_file.parent.mkdir(parents=True, exist_ok=True)
    api.settings.rollout_file.write_text(json.dumps({"current": str(tmp_path / "nowhere")}))
    response = api.client.get("/status")
    # /status is public: a short code, no path and no error text (both are in the log).
    assert response.json()["model_version"] == served and response.json()["reload_error"] == "models_not_found"
    assert "nowhere" not in response.text and str(tmp_path) not in response.text
    log = (api.settings.log_dir / "api.log").read_text()
    assert "models_not_found" in log and str(tmp_path / "nowhere") in log
    api.settings.rollout_file.write_text("{not json")
    assert api.client.get("/status").json()["reload_error"] == "rollout_file_invalid"
    response = api.client.post("/predict", data={"designation": TITLE}, headers=api.auth)
    assert response.status_code == 200 and response.json()["model_version"] == served
    reload = api.client.post("/admin/reload", headers=api.add_admin())
    assert reload.status_code == 409 and "previous models still served" in reload.json()["detail"]


def test_reload_is_for_admins_only(api, candidate_dir):
    assert api.client.post("/admin/reload").status_code == 401
    refused = api.client.post("/admin/reload", headers=api.auth)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    api.settings.rollout_file.parent.mkdir(parents=True, exist_ok=True)
    api.settings.rollout_file.write_text(json.dumps(
        {"current": str(api.settings.models_dir), "candidate": str(candidate_dir), "candidate_share": 0.25}))
    response = api.client.post("/admin/reload", headers=api.add_admin())
    assert response.status_code == 200, response.text
    body = response.json()
    status = api.client.get("/status").json()
    assert body == {"current": status["model_version"], "candidate": status["candidate"]["model_version"],
                    "candidate_share": 0.25, "other_workers_notified": True}


def test_reload_picks_up_models_changed_in_place_in_every_worker(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    # A current folder of its own, rewritten in place (as a `dvc checkout` would), and models
    # really loaded from disk on each reload (the other tests share one loaded classifier per folder).
    folder = candidate_models(repo / "models", tmp_path / "served", text_weight=1.0)
    # No dvc.lock describes the folder: its version comes from its files. Two apps on the same
    # files stand for two uvicorn workers.
    settings = dict(classifier_factory=ProductClassifier, models_dir=folder, dvc_lock=tmp_path / "absent.lock")
    write_state(tmp_path / "api" / "deployments" / "rollout.json", RolloutState(str(folder)))
    with running_api(repo, tmp_path / "api", **settings) as api, \
            running_api(repo, tmp_path / "api", **settings) as other_worker:
        before = predict_with_image(api)
        candidate_models(repo / "models", folder, text_weight=0.0)
        assert predict_with_image(api) == before  # nothing reloads by itself when only the models change
        reload = api.client.post("/admin/reload", headers=api.add_admin())
        assert reload.status_code == 200 and reload.json()["current"] != before["model_version"]
        after = predict_with_image(api)
        assert predict_with_image(other_worker) == after  # told through the rollout file
    assert after["model_version"] == reload.json()["current"]
    assert after["top5"] != before["top5"]  # the image alone now decides


def test_metrics_count_predictions_per_model_version_and_name_both_variants(api, rollout, candidate_dir):
    assert rollout("set-candidate", str(candidate_dir), "--share", "0.5") == 0
    answers = batch(api, [{"designation": TITLE, "productid": i} for i in range(40)])
    per_version = {}
    for answer in answers:
        per_version[answer["model_version"]] = per_version.get(answer["model_version"], 0) + 1
    counted = {}
    for sample in metric_samples(api, "rakuten_predictions"):
        if sample.name.endswith("_total"):
            version = sample.labels["model_version"]
            counted[version] = counted.get(version, 0) + sample.value
    assert counted == per_version and len(counted) == 2
    info = {(s.labels["variant"], s.labels["version"]): s.value for s in metric_samples(api, "rakuten_model_info")}
    assert info == {("current", a["model_version"]): 1.0 for a in answers if a["variant"] == "current"} | {
        ("candidate", a["model_version"]): 1.0 for a in answers if a["variant"] == "candidate"}
    assert [s.value for s in metric_samples(api, "rakuten_model_candidate_share")] == [0.5]
    # After the promotion the candidate's version is the current one; the old current is gone.
    assert rollout("promote") == 0
    api.client.get("/status")
    info = {(s.labels["variant"], s.labels["version"]) for s in metric_samples(api, "rakuten_model_info")}
    assert info == {("current", a["model_version"]) for a in answers if a["variant"] == "candidate"}


def test_drift_series_come_from_the_report_file_at_scrape_time(api):
    assert "rakuten_drift" not in api.metrics()
    report = {"generated_at": "2025-06-01T10:00:00+00:00", "n_production": 500, "n_reference": 700,
              "drift_detected": True, "features": {
                  "title_length": {"test": "psi", "score": 0.31, "threshold": 0.2, "drifted": True},
                  "language": {"test": "chi2", "score": 3.5, "threshold": 11.07, "drifted": False}}}
    api.settings.drift_report.write_text(json.dumps(report))
    scores = {s.labels["feature"]: s.value for s in metric_samples(api, "rakuten_drift_score")}
    assert scores == {"title_length": 0.31, "language": 3.5}
    assert [s.value for s in metric_samples(api, "rakuten_drift_detected")] == [1.0]
    assert [s.value for s in metric_samples(api, "rakuten_drift_report_timestamp_seconds")] == [1748772000.0]
    assert [s.value for s in metric_samples(api, "rakuten_drift_production_samples")] == [500.0]
    thresholds = {s.labels["feature"]: s.value for s in metric_samples(api, "rakuten_drift_threshold")}
    assert thresholds == {"title_length": 0.2, "language": 11.07}
    api.settings.drift_report.write_text(json.dumps({**report, "drift_detected": False}))
    assert [s.value for s in metric_samples(api, "rakuten_drift_detected")] == [0.0]
    api.settings.drift_report.write_text("{half a report")
    assert "rakuten_drift" not in api.metrics()


def test_the_prediction_log_has_one_profile_line_per_product_and_no_text(api, rollout, candidate_dir):
    assert rollout("set-candidate", str(candidate_dir), "--share", "0.5") == 0
    products = [{"designation": f"Coussin déhoussable en velours {i}", "productid": i, "description": "Très doux"}
                for i in range(12)]
    answers = batch(api, products)
    single = api.client.post("/predict", data={"designation": "Manette sans fil pour console"},
                             headers=api.auth).json()
    # The lines are written by a background thread, after the answers.
    text = wait_for_lines(api.settings.prediction_log, 13)
    for secret in ("Coussin", "velours", "Très doux", "Manette"):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 13
    for line, answer in zip(lines, [*answers, single], strict=True):
        assert set(line) == {"ts", "model_version", "variant", "prdtypecode", "confidence", "decision"} | PROFILE_FIELDS
        assert (line["model_version"], line["variant"]) == (answer["model_version"], answer["variant"])
        assert line["decision"] == answer["decision"] and answer["decision"] in ("auto", "review")
        assert (line["prdtypecode"], line["confidence"]) == (answer["prdtypecode"], answer["probability"])
        assert line["ts"].endswith("+00:00") and line["image_missing"] is True
    # Written out by hand, not by input_profile (the function that made the log line).
    assert {k: lines[0][k] for k in PROFILE_FIELDS} == {
        "title_length": len("Coussin déhoussable en velours 0"), "description_missing": False, "image_missing": True,
        "language": "fr"}
    assert lines[0]["description_missing"] is False and lines[-1]["description_missing"] is True


def test_the_request_log_names_the_version_and_variant_that_answered(tiny_pipeline, tmp_path, candidate_dir):
    repo, _ = tiny_pipeline
    # Its own app: logging is process-wide, and the last app built owns the log file.
    with running_api(repo, tmp_path) as logged:
        version = logged.client.get("/status").json()["model_version"]
        logged.client.post("/predict", data={"designation": TITLE}, headers={**logged.auth, "X-Request-ID": "ab-1"})
    lines = [json.loads(line) for line in (tmp_path / "logs" / "api.log").read_text().splitlines()]
    entry = next(line for line in lines if line.get("request_id") == "ab-1")
    assert (entry["model_version"], entry["variant"]) == (version, "current")
    assert all("variant" not in line for line in lines if line.get("path") == "/status")


def test_the_prediction_log_can_be_turned_off(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, prediction_log="") as quiet:
        assert quiet.settings.prediction_log is None
        assert quiet.client.post("/predict", data={"designation": TITLE}, headers=quiet.auth).status_code == 200
    assert not (tmp_path / "logs" / "predictions.jsonl").exists()


def test_the_api_does_not_start_on_a_rollout_file_naming_missing_models(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    rollout_file = tmp_path / "rollout.json"
    rollout_file.write_text(json.dumps({"current": str(repo / "models"), "candidate": str(tmp_path / "gone"),
                                        "candidate_share": 0.1}))
    with pytest.raises(ModelsNotFoundError, match="gone"):
        with running_api(repo, tmp_path, rollout_file=rollout_file):
            pass
