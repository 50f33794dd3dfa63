"""Monitoring for real: promtool on monitoring/, and a Prometheus server scraping a running API.

The live tests start, on 127.0.0.1 free ports, uvicorn on the tiny pipeline's models, Debian's
node exporter and Debian's Prometheus with monitoring/prometheus.yml (targets rewritten to those
ports, 1 s scrape and rule intervals), send real requests, then ask Prometheus's HTTP API whether
the series are there and whether every dashboard panel and alert rule evaluates.
"""

import base64
import json
import math
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from api_support import add_users, candidate_models, product_jpeg
from server_utils import background, free_port, required_program, wait_for_http
from test_api_server import api_env, running_server

REPO_ROOT = Path(__file__).resolve().parents[1]
MONITORING = REPO_ROOT / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
ALERT_RULES = MONITORING / "alert_rules.yml"
ALERT_RULES_TESTS = sorted(MONITORING.glob("alert_rules_test*.yml"))
GRAFANA = MONITORING / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
DASHBOARD_PROVIDERS = sorted((GRAFANA / "provisioning" / "dashboards").glob("*.yml"))
# Debian package names: `apt-get install prometheus prometheus-node-exporter`.
BINARIES = {"promtool": "prometheus", "prometheus": "prometheus",
            "prometheus-node-exporter": "prometheus-node-exporter"}
SCRAPE_INTERVAL_S = 1
# Grafana's global variables, expanded as Grafana would for a short dashboard time range.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "5s", "__range": "10m"}
GRAFANA_VARIABLE = re.compile(r"\$\{?(__\w+)\}?")
# Metric names of the API, node exporter and processes in PromQL (outside string literals).
METRIC_NAME = re.compile(r"\b(?:rakuten|http|node|process)_\w+")
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
READY_TIMEOUT_S = 60
# What one round of traffic (send_round) does, as Prometheus should count it.
ROUND = {"predicted": 4, "without_image": 2, "rejected_images": 1, "unauthorized": 1}
ROUNDS = 2
CANDIDATE_SHARE = 0.5
HOST_LOAD_ALERTS = {"HostHighCpu", "HostLowMemory", "HostDiskAlmostFull"}
# generated_at is set to now when written: a fresh report, which RakutenDriftReportStale leaves alone.
DRIFT_REPORT = {
    "n_production": 500, "n_reference": 1000, "drift_detected": True,
    "features": {
        "title_length": {"test": "psi", "score": 0.31, "threshold": 0.2, "drifted": True},
        "image_missing": {"test": "chi2", "score": 2.5, "threshold": 3.841459, "drifted": False},
    },
}


def binary(name: str) -> str:
    """Path of a Prometheus binary; missing fails under CI (CI=true) and skips elsewhere."""
    return required_program(name, f"apt-get install -y --no-install-recommends {BINARIES[name]}")


def promtool(*args: str) -> subprocess.CompletedProcess:
    """Run promtool from the repository root; return the finished process."""
    return subprocess.run([binary("promtool"), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def load_yaml(path: Path) -> dict:
    """A YAML file as a dictionary."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict]:
    """Every rule of alert_rules.yml."""
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def dashboard_targets() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL expression) of every panel target, rows' panels included."""
    found = []
    for path in DASHBOARDS:
        panels = json.loads(path.read_text(encoding="utf-8"))["panels"]
        for panel in panels + [inner for row in panels for inner in row.get("panels", [])]:
            found += [(path.name, panel["title"], target["expr"]) for target in panel.get("targets", [])]
    return found


def expand_grafana_variables(expr: str) -> str:
    """The expression with Grafana's $__rate_interval, $__interval and $__range replaced by durations."""
    return GRAFANA_VARIABLE.sub(lambda match: GRAFANA_VARIABLES[match.group(1)], expr)


# --- Static checks: promtool and the Grafana provisioning files --------------------------------


def test_promtool_accepts_the_config_and_its_rule_files(tmp_path):
    # promtool opens the token file: the same config, with one where the compose secret would be.
    checked = tmp_path / "prometheus.yml"
    config = load_yaml(PROMETHEUS_CONFIG)
    config["rule_files"] = [str((PROMETHEUS_CONFIG.parent / name).resolve()) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        if "authorization" in job:
            (tmp_path / "metrics_token").write_text("a-token")
            job["authorization"]["credentials_file"] = str(tmp_path / "metrics_token")
    checked.write_text(yaml.safe_dump(config, sort_keys=False))
    config = promtool("check", "config", str(checked))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout + config.stderr
    rules = promtool("check", "rules", str(ALERT_RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"{len(alert_rules())} rules found" in rules.stdout + rules.stderr


def test_alert_unit_tests_pass_and_make_every_alert_fire():
    result = promtool("test", "rules", *map(str, ALERT_RULES_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(ALERT_RULES_TESTS) == 2, result.stdout
    fired = {check["alertname"] for path in ALERT_RULES_TESTS for group in load_yaml(path)["tests"]
             for check in group.get("alert_rule_test", []) if check.get("exp_alerts")}
    assert fired == {rule["alert"] for rule in alert_rules()}


def test_prometheus_scrapes_the_compose_services():
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: [t for static in job["static_configs"] for t in static["targets"]] for name, job in jobs.items()}
    assert targets["rakuten-api"] == ["api:8000"]
    assert targets["node"] == ["node-exporter:9100"]
    assert jobs["rakuten-api"].get("metrics_path", "/metrics") == "/metrics"
    assert [(PROMETHEUS_CONFIG.parent / name).resolve() for name in config["rule_files"]] == [ALERT_RULES]


def test_grafana_panels_use_the_provisioned_prometheus_datasource():
    datasources = [source for path in DATASOURCES for source in load_yaml(path)["datasources"]]
    prometheus, = [source for source in datasources if source["type"] == "prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"
    # $__rate_interval is only right when Grafana knows the scrape interval.
    assert prometheus["jsonData"]["timeInterval"] == load_yaml(PROMETHEUS_CONFIG)["global"]["scrape_interval"]
    assert DASHBOARDS and DASHBOARD_PROVIDERS
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
        assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"]), path.name
        for panel in panels:
            assert panel["targets"], f"{path.name}: panel {panel['title']!r} has no query"
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
            uids = {panel["datasource"]["uid"]} | {target["datasource"]["uid"] for target in panel["targets"]}
            assert uids == {prometheus["uid"]}, f"{path.name}: panel {panel['title']!r} uses {uids}"


# --- Live: uvicorn, node exporter and Prometheus on 127.0.0.1 ----------------------------------


@dataclass
class Stack:
    """The running servers, the API's files and what the traffic made the API answer."""

    api_url: str
    prometheus_url: str
    rollout_file: Path
    headers: dict
    # Products predicted per model version, and the version of each variant, from the API's answers.
    predicted_by_version: Counter = field(default_factory=Counter)
    version_of_variant: dict = field(default_factory=dict)


def write_api_files(env: dict[str, str], repo: Path, tmp: Path) -> None:
    """A fresh drift report and a rollout file with a candidate, where env tells the API to look."""
    report = {**DRIFT_REPORT, "generated_at": datetime.now(UTC).isoformat()}
    Path(env["RAKUTEN_API_DRIFT_REPORT"]).write_text(json.dumps(report))
    rollout_file = Path(env["RAKUTEN_API_ROLLOUT_FILE"])
    rollout_file.parent.mkdir(parents=True, exist_ok=True)
    rollout_file.write_text(json.dumps({"current": str(repo / "models"), "candidate_share": CANDIDATE_SHARE,
                                        "candidate": str(candidate_models(repo / "models", tmp / "candidate"))}))


@contextmanager
def running_api(repo: Path, tmp: Path) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """uvicorn (one worker) on the tiny models, candidate included; yields its URL, environment and user."""
    users_file = tmp / "users.json"
    (username, password), = add_users(users_file).items()
    # Rollout changes seen at the next request; no rate limit in the way of the traffic.
    env = {**api_env(repo, tmp, users_file), "RAKUTEN_API_ROLLOUT_CHECK_SECONDS": "0",
           "RAKUTEN_API_RATE_LIMIT_ENABLED": "false"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    write_api_files(env, repo, tmp)
    with running_server(env, tmp) as url:
        yield url, env, {"username": username, "password": password}


def prometheus_test_config(ports: dict[str, int], token_file: Path) -> dict:
    """monitoring/prometheus.yml with 1 s intervals, absolute rule paths, targets on 127.0.0.1 and this token file."""
    config = load_yaml(PROMETHEUS_CONFIG)
    interval = f"{SCRAPE_INTERVAL_S}s"
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str((PROMETHEUS_CONFIG.parent / name).resolve()) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            # A KeyError here means prometheus.yml gained a target this test does not start.
            static["targets"] = [f"127.0.0.1:{ports[target]}" for target in static["targets"]]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token_file)
    return config


@contextmanager
def running_prometheus(api_port: int, metrics_token: str, tmp: Path) -> Iterator[str]:
    """node exporter and Prometheus on free ports, scraping the API with its token; yields Prometheus's URL."""
    node_port, prometheus_port = free_port(), free_port()
    config_file, token_file = tmp / "prometheus.yml", tmp / "metrics_token"
    token_file.write_text(metrics_token)
    config = prometheus_test_config({"api:8000": api_port, "node-exporter:9100": node_port,
                                     "localhost:9090": prometheus_port}, token_file)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    node_command = [binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{node_port}"]
    prometheus_command = [binary("prometheus"), f"--config.file={config_file}",
                          f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"]
    with background(node_command, tmp / "node_exporter.out") as node_exporter, \
            background(prometheus_command, tmp / "prometheus.out") as prometheus:
        wait_for_http(f"http://127.0.0.1:{node_port}/metrics", node_exporter, tmp / "node_exporter.out",
                      READY_TIMEOUT_S)
        url = f"http://127.0.0.1:{prometheus_port}"
        wait_for_http(f"{url}/-/ready", prometheus, tmp / "prometheus.out", READY_TIMEOUT_S)
        yield url


def predicted(response: httpx.Response, stack: Stack) -> list[dict]:
    """The predictions of a 200 answer, counted per model version and variant into stack."""
    assert response.status_code == 200, response.text
    body = response.json()
    predictions = body["predictions"] if "predictions" in body else [body]
    for prediction in predictions:
        stack.predicted_by_version[prediction["model_version"]] += 1
        stack.version_of_variant[prediction["variant"]] = prediction["model_version"]
    return predictions


def send_round(client: httpx.Client, stack: Stack) -> None:
    """One round of traffic, as counted in ROUND: 4 products (2 without image), 1 refused image, 1 401."""
    photo, headers = product_jpeg(), stack.headers
    # The productids route to the current (2, 6) and candidate (1, 3) models at CANDIDATE_SHARE 0.5.
    with_image, = predicted(client.post("/predict", headers=headers,
                                        data={"designation": "Piscine hors sol ronde", "productid": "2"},
                                        files={"image": ("photo.jpg", photo, "image/jpeg")}), stack)
    assert with_image["modalities"] == ["text", "image"]
    text_only, = predicted(client.post("/predict", headers=headers,
                                       data={"designation": "Lot de 3 romans policiers", "productid": "1"}), stack)
    assert text_only["modalities"] == ["text"]
    batch = predicted(client.post("/predict/batch", headers=headers, json=[
        {"designation": "Manette sans fil", "productid": 3, "image_base64": base64.b64encode(photo).decode()},
        {"designation": "Jeu de société", "productid": 6}]), stack)
    assert [p["modalities"] for p in batch] == [["text", "image"], ["text"]]
    refused = client.post("/predict", headers=headers, data={"designation": "Lampe"},
                          files={"image": ("broken.jpg", photo[:300], "image/jpeg")})
    assert refused.status_code in (413, 415, 422), refused.text
    assert client.post("/predict", data={"designation": "Lampe"}).status_code == 401


def query(prometheus_url: str, expr: str) -> dict:
    """Prometheus's answer to an instant query (status, data or error)."""
    return httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()


def scalar(prometheus_url: str, expr: str) -> float | None:
    """The single value of an instant query, or None when it has no series."""
    result = query(prometheus_url, expr)
    assert result["status"] == "success", f"{expr}: {result}"
    samples = result["data"]["result"]
    assert len(samples) <= 1, f"{expr} returned {len(samples)} series"
    return float(samples[0]["value"][1]) if samples else None


def wait_for_value(prometheus_url: str, expr: str, expected: float, timeout: float = 30) -> None:
    """Wait until an instant query returns expected (Prometheus scraped the latest counts)."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = scalar(prometheus_url, expr)
        if value == expected:
            return
        time.sleep(SCRAPE_INTERVAL_S / 2)
    pytest.fail(f"{expr} is {value}, not {expected}, after {timeout} s")


def alert_states(prometheus_url: str) -> dict[tuple[str, str], str]:
    """{(alert name, feature label or ""): state} of the active alerts."""
    alerts = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return {(alert["labels"]["alertname"], alert["labels"].get("feature", "")): alert["state"] for alert in alerts}


def wait_for_alert(prometheus_url: str, name: str, state: str, timeout: float = 20) -> dict:
    """Wait until alert `name` is in `state`; return every active alert's state."""
    deadline = time.monotonic() + timeout
    while True:
        states = alert_states(prometheus_url)
        if state in {value for (alert, _), value in states.items() if alert == name} or time.monotonic() > deadline:
            return states
        time.sleep(SCRAPE_INTERVAL_S)


@pytest.fixture(scope="session")
def prometheus_servers() -> None:
    """Fail (CI) or skip (elsewhere) before the tiny pipeline runs when a server binary is missing."""
    for name in ("prometheus", "prometheus-node-exporter"):
        binary(name)


@pytest.fixture(scope="module")
def stack(prometheus_servers, tiny_pipeline, tmp_path_factory) -> Iterator[Stack]:
    """API, node exporter and Prometheus running, ROUNDS rounds of traffic each scraped in turn."""
    repo, _ = tiny_pipeline
    tmp = tmp_path_factory.mktemp("prometheus_stack")
    with running_api(repo, tmp) as (api_url, env, user), \
            running_prometheus(int(api_url.rsplit(":", 1)[1]), env["RAKUTEN_API_METRICS_TOKEN"], tmp) as prometheus_url, \
            httpx.Client(base_url=api_url, timeout=60) as client:
        token = client.post("/token", data=user)
        assert token.status_code == 200, token.text
        stack = Stack(api_url, prometheus_url, Path(env["RAKUTEN_API_ROLLOUT_FILE"]),
                      {"Authorization": f"Bearer {token.json()['access_token']}"})
        # Separate rounds, each scraped before the next, so that every rate() sees counters grow.
        for done in range(1, ROUNDS + 1):
            send_round(client, stack)
            wait_for_value(prometheus_url, "sum(rakuten_predictions_total)", done * ROUND["predicted"])
        # Two more scrapes: the last counts are in every rate() window.
        time.sleep(2.5 * SCRAPE_INTERVAL_S)
        yield stack


def test_prometheus_scraped_the_api_and_counts_the_traffic(stack):
    url = stack.prometheus_url
    assert scalar(url, 'up{job="rakuten-api"}') == 1
    assert scalar(url, 'up{job="node"}') == 1
    assert scalar(url, 'up{job="prometheus"}') == 1
    assert scalar(url, 'sum(rakuten_predictions_without_image_total)') == ROUNDS * ROUND["without_image"]
    assert scalar(url, 'sum(rakuten_rejected_images_total)') == ROUNDS * ROUND["rejected_images"]
    assert scalar(url, 'sum(http_requests_total{handler="/predict", status="401"})') == ROUNDS * ROUND["unauthorized"]
    assert scalar(url, 'sum(http_requests_total{handler="/predict/batch", status="200"})') == ROUNDS
    # Each answer named the version that predicted it; Prometheus counted the same per version.
    assert sum(stack.predicted_by_version.values()) == ROUNDS * ROUND["predicted"]
    for version, count in stack.predicted_by_version.items():
        assert scalar(url, f'sum(rakuten_predictions_total{{model_version="{version}"}})') == count
    assert set(stack.version_of_variant) == {"current", "candidate"}
    for variant, version in stack.version_of_variant.items():
        assert scalar(url, f'rakuten_model_info{{version="{version}", variant="{variant}"}}') == 1
    assert scalar(url, "rakuten_model_candidate_share") == CANDIDATE_SHARE


def test_anonymous_scrapes_get_the_operational_series_only(stack):
    anonymous = httpx.get(f"{stack.api_url}/metrics", timeout=10)
    wrong = httpx.get(f"{stack.api_url}/metrics", headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    for response in (anonymous, wrong):
        assert response.status_code == 200
        names = {line.split("{")[0].split(" ")[0] for line in response.text.splitlines() if not line.startswith("#")}
        assert 'http_requests_total{handler="/predict"' in response.text
        assert not {name for name in names if name.startswith(("rakuten_predictions", "rakuten_drift", "rakuten_model"))}
    # Prometheus, with the token file, scraped what the anonymous caller could not see.
    assert scalar(stack.prometheus_url, "sum(rakuten_predictions_total)") == ROUNDS * ROUND["predicted"]


def test_prometheus_exports_the_drift_report(stack):
    url = stack.prometheus_url
    assert scalar(url, "rakuten_drift_detected") == 1
    for feature, result in DRIFT_REPORT["features"].items():
        assert scalar(url, f'rakuten_drift_score{{feature="{feature}"}}') == pytest.approx(result["score"])
        assert scalar(url, f'rakuten_drift_threshold{{feature="{feature}"}}') == pytest.approx(result["threshold"])


def test_every_dashboard_query_returns_numbers(stack):
    failures = []
    for dashboard, title, expr in dashboard_targets():
        result = query(stack.prometheus_url, expand_grafana_variables(expr))
        if result["status"] != "success":
            failures.append(f"{dashboard} / {title}: {expr}: {result.get('error')}")
            continue
        values = [float(sample["value"][1]) for sample in result["data"]["result"]]
        # Every panel has something to show after this traffic: a real, finite number.
        if not any(math.isfinite(value) for value in values):
            failures.append(f"{dashboard} / {title}: {expr}: no finite value in {result['data']['result']}")
    assert not failures, "\n".join(failures)


def test_dashboard_splits_predictions_by_variant(stack):
    (_, _, by_variant), = [target for target in dashboard_targets() if target[1] == "Products per second by variant"]
    result = query(stack.prometheus_url, expand_grafana_variables(by_variant))["data"]["result"]
    rates = {sample["metric"]["variant"]: float(sample["value"][1]) for sample in result}
    assert rates.keys() == {"current", "candidate"} and all(rate > 0 for rate in rates.values()), rates


def test_every_metric_the_dashboard_and_alerts_read_is_exported(stack):
    # A misspelt or renamed metric evaluates fine, to nothing: compare the names with what was scraped.
    exprs = [expr for _, _, expr in dashboard_targets()] + [rule["expr"] for rule in alert_rules()]
    used = {name for expr in exprs for name in METRIC_NAME.findall(STRING_LITERAL.sub('""', expr))}
    exported = set(httpx.get(f"{stack.prometheus_url}/api/v1/label/__name__/values", timeout=10).json()["data"])
    assert len(used) > 10, used
    assert not used - exported, f"never scraped: {sorted(used - exported)}"


def test_every_alert_expression_evaluates(stack):
    failures = []
    for rule in alert_rules():
        result = query(stack.prometheus_url, rule["expr"])
        if result["status"] != "success":
            failures.append(f"{rule['alert']}: {result.get('error')}")
    assert not failures, "\n".join(failures)


def loaded_rules(prometheus_url: str) -> list[dict]:
    """Every rule Prometheus loaded, once each has been evaluated at least once."""
    deadline = time.monotonic() + 30
    while True:
        groups = httpx.get(f"{prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if all(rule["health"] != "unknown" for rule in rules) or time.monotonic() > deadline:
            return rules
        time.sleep(SCRAPE_INTERVAL_S)


def test_prometheus_loaded_every_rule_healthy(stack):
    rules = loaded_rules(stack.prometheus_url)
    assert sorted(rule["name"] for rule in rules) == sorted(rule["alert"] for rule in alert_rules())
    unhealthy = {rule["name"]: (rule["health"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"}
    assert not unhealthy


def test_drift_alerts_are_pending_and_nothing_else_is_active(stack):
    wait_for_alert(stack.prometheus_url, "RakutenFeatureDrift", "pending")
    drifted = [name for name, result in DRIFT_REPORT["features"].items() if result["drifted"]]
    # The report says drift: both alerts wait out their `for:` (5 min) as pending, for the drifted feature only.
    expected = {("RakutenDataDriftDetected", ""): "pending"} | {("RakutenFeatureDrift", f): "pending" for f in drifted}
    states = wait_for_alert(stack.prometheus_url, "RakutenDataDriftDetected", "pending")
    # The host alerts depend on this machine's load, not on the stack.
    assert {key: state for key, state in states.items() if key[0] not in HOST_LOAD_ALERTS} == expected


def test_a_broken_rollout_file_fires_the_reload_alert(stack):
    # Runs last: the API keeps its models, but its rollout file stays broken.
    stack.rollout_file.write_text("{not json")
    with httpx.Client(base_url=stack.api_url, timeout=60) as client:
        response = client.post("/predict", headers=stack.headers, data={"designation": "Lampe de chevet"})
    assert response.status_code == 200, response.text
    states = wait_for_alert(stack.prometheus_url, "RakutenModelReloadFailed", "firing")
    assert states.get(("RakutenModelReloadFailed", "")) == "firing", states
