"""The JSON routes behind the console: /me, /reports/evaluation, /reports/drift, /admin/rollout (in-process app)."""

import json
from pathlib import Path

import pytest

from api_support import candidate_models, running_api
from rakuten_mm.serving.reports import confusion_matrix, drift_summary, evaluation_metrics
from rakuten_mm.serving.rollout import RolloutState, read_state, write_state

SCORES = {"accuracy": 0.5, "f1_weighted": 0.4, "f1_macro": 0.3}


@pytest.fixture
def api(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path / "api") as running:
        yield running


def write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# --- reading what the pipeline wrote ---

def test_the_test_section_is_read_when_the_file_has_one(tmp_path):
    path = write(tmp_path / "m.json", {"val": {"fusion": {**SCORES, "f1_weighted": 0.9}},
                                       "test": {"fusion": SCORES, "text": {**SCORES, "f1_weighted": 0.2}},
                                       "per_class_f1": {"40": 0.25, "10": 0.75}})
    metrics = evaluation_metrics(path)
    assert metrics["split"] == "test"
    assert metrics["models"] == {"fusion": SCORES, "text": {**SCORES, "f1_weighted": 0.2}}
    assert [(r["prdtypecode"], r["category"], r["f1"]) for r in metrics["per_class_f1"]] == [
        (10, "Livres d'occasion", 0.75), (40, "Jeux vidéo d'import", 0.25)]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", json.dumps({"test": {"fusion": "n/a"}})])
def test_an_unreadable_or_foreign_metrics_file_gives_no_metrics(tmp_path, content):
    assert evaluation_metrics(write(tmp_path / "m.json", content)) is None
    assert evaluation_metrics(tmp_path / "absent.json") is None


def test_the_confusion_matrix_counts_pairs_with_codes_in_numeric_order(tmp_path):
    rows = [{"actual": "1140", "predicted": "40"}, {"actual": "40", "predicted": "40"},
            {"actual": "40", "predicted": "40"}, {"actual": "10", "predicted": "1140"}, {"unrelated": 1}]
    matrix = confusion_matrix(write(tmp_path / "cm.json", rows))
    assert matrix == {"labels": ["10", "40", "1140"], "matrix": [[0, 0, 1], [0, 2, 0], [0, 1, 0]]}
    assert confusion_matrix(write(tmp_path / "bad.json", "{}")) is None


def test_the_drift_summary_keeps_the_verdicts_and_drops_the_distributions(tmp_path):
    assert drift_summary(tmp_path / "absent.json") == {"available": False, "features": {}}
    report = {"generated_at": "2026-01-01T00:00:00+00:00", "drift_detected": True, "n_production": 9,
              "features": {"language": {"test": "chi2", "score": 9.0, "threshold": 3.8, "drifted": True,
                                        "bins": ["fr", "en"], "reference_shares": [0.9, 0.1]}}}
    summary = drift_summary(write(tmp_path / "drift.json", report))
    assert summary["drift_detected"] is True
    assert summary["features"]["language"]["score"] == 9.0 and "bins" not in summary["features"]["language"]


# --- the routes ---

def test_me_says_who_is_signed_in_and_whether_they_are_admin(api):
    assert api.client.get("/me", headers=api.auth).json() == {"username": api.username, "admin": False}
    assert api.client.get("/me", headers=api.add_admin()).json()["admin"] is True
    assert api.client.get("/me").status_code == 401


def test_the_evaluation_report_is_the_pipeline_s_for_the_served_models(api, tiny_pipeline):
    repo, _ = tiny_pipeline
    written = json.loads((repo / "metrics" / "evaluate" / "metrics.json").read_text())
    fusion = written.get("test", written)["fusion"]
    rows = json.loads((repo / "plots" / "evaluate" / "sklearn" / "confusion_matrix.json").read_text())
    assert api.client.get("/reports/evaluation").status_code == 401
    (current,) = api.client.get("/reports/evaluation", headers=api.auth).json()
    assert current["variant"] == "current"
    assert current["model_version"] == api.client.get("/status").json()["model_version"]
    assert current["metrics"]["models"]["fusion"]["f1_weighted"] == pytest.approx(fusion["f1_weighted"])
    assert sum(map(sum, current["confusion_matrix"]["matrix"])) == len(rows)
    assert current["matches_served"] is True  # dvc.lock: evaluate scored these very model files


def test_a_candidate_without_an_evaluation_beside_it_says_so(api, tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    candidate = candidate_models(repo / "models", tmp_path / "exp" / "models")
    write_state(api.settings.rollout_file, RolloutState(str(repo / "models"), str(candidate), 0.5))
    current, other = api.client.get("/reports/evaluation", headers=api.auth).json()
    assert (current["variant"], other["variant"]) == ("current", "candidate")
    assert current["metrics"] is not None and other["metrics"] is None and other["confusion_matrix"] is None


def test_promote_and_rollback_are_for_admins_and_need_something_to_act_on(api, tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    admin = api.add_admin()
    before = api.client.get("/status").json()["model_version"]
    assert api.client.post("/admin/rollout/promote", headers=api.auth).status_code == 403
    assert api.client.get("/admin/rollout", headers=api.auth).status_code == 403
    refused = api.client.post("/admin/rollout/promote", headers=admin)
    assert refused.status_code == 409 and "no candidate" in refused.json()["detail"]
    assert api.client.post("/admin/rollout/undo", headers=admin).status_code == 422

    candidate = candidate_models(repo / "models", tmp_path / "candidate")
    write_state(api.settings.rollout_file, RolloutState(str(repo / "models"), str(candidate), 0.2))
    state = api.client.get("/admin/rollout", headers=admin).json()
    assert state["candidate"] == str(candidate) and state["previous"] is None
    promoted = api.client.post("/admin/rollout/promote", headers=admin).json()
    assert promoted["current"] == state["served_candidate_version"] != before and promoted["candidate"] is None
    assert api.client.get("/status").json()["model_version"] == promoted["current"]
    assert api.client.get("/admin/rollout", headers=admin).json()["previous"] == str(repo / "models")
    assert api.client.post("/admin/rollout/rollback", headers=admin).json()["current"] == before
    again = api.client.post("/admin/rollout/rollback", headers=admin)
    assert again.status_code == 409 and "no previous" in again.json()["detail"]


def test_a_promotion_that_cannot_load_puts_the_rollout_file_back(api, tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    admin = api.add_admin()
    before = api.client.get("/status").json()["model_version"]
    broken = candidate_models(repo / "models", tmp_path / "broken")
    (broken / "fusion" / "fusion.json").write_text("{ not json")
    state = RolloutState(str(repo / "models"), str(broken), 0.1)
    write_state(api.settings.rollout_file, state)
    response = api.client.post("/admin/rollout/promote", headers=admin)
    assert response.status_code == 409
    after = read_state(api.settings.rollout_file, api.settings.models_dir)
    assert (after.current, after.candidate, after.candidate_share) == (state.current, state.candidate, 0.1)
    assert api.client.get("/status").json()["model_version"] == before
