"""k8s/sweep/: the sweep's Kubernetes Indexed Job, checked offline against the Kubernetes schemas
(kubernetes-validate, strict) and against the files it refers to: the sweep file's number of parameter
sets, the ConfigMap and Secret keys, the worker's environment variables, the image that runs it."""

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from rakuten_mm.tracking import sweep_worker
from rakuten_mm.tracking.sweeps import parameter_sets

REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEP_DIR = REPO_ROOT / "k8s" / "sweep"
K8S_VERSIONS = ("1.30.0", "1.37.0")
COMPLETION_INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a kustomize env file (comments and blank lines skipped)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def kustomization() -> dict:
    """k8s/sweep/kustomization.yaml."""
    return yaml.safe_load((SWEEP_DIR / "kustomization.yaml").read_text())


def job() -> dict:
    """The Job of k8s/sweep/job.yaml."""
    (resource,) = kustomization()["resources"]
    return yaml.safe_load((SWEEP_DIR / resource).read_text())


def worker(manifest: dict) -> dict:
    """The worker container of a Job."""
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return container


def json_patch_add(document: dict, operations: list[dict]) -> dict:
    """A copy of document with JSON-patch `add` operations applied (the only operation the GPU patch uses)."""
    patched = copy.deepcopy(document)
    for operation in operations:
        assert operation["op"] == "add", operation
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
        target = patched
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = operation["value"]
    return patched


def validate(manifest: dict, version: str) -> None:
    """Strict validation against one Kubernetes version's schema; fail with its message."""
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except ValidationError as error:
        pytest.fail(f"{manifest['kind']} against Kubernetes {version}: {error.message}")


def gpu_job() -> dict:
    """The Job with the optional gpu component's patch applied."""
    component = yaml.safe_load((SWEEP_DIR / "gpu" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    (patch,) = component["patches"]
    assert (patch["target"]["kind"], patch["target"]["name"]) == ("Job", job()["metadata"]["name"])
    return json_patch_add(job(), yaml.safe_load((SWEEP_DIR / "gpu" / patch["path"]).read_text()))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_sweep_job_with_and_without_gpu_matches_the_kubernetes_schemas(version):
    validate(job(), version)
    validate(gpu_job(), version)
    assert worker(gpu_job())["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in worker(job())["resources"]["limits"]


def test_kubernetes_schemas_reject_a_broken_sweep_job():
    wrong_type, misspelt = job(), job()
    wrong_type["spec"]["completions"] = "four"
    misspelt["spec"]["backoffLimitPerIndexx"] = 2
    for broken in (wrong_type, misspelt):
        with pytest.raises(ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_each_completion_index_is_one_parameter_set_of_the_configured_sweep():
    spec, settings = job()["spec"], env_file(SWEEP_DIR / "sweep.env")
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == len(parameter_sets(REPO_ROOT / settings["RAKUTEN_SWEEP_FILE"]))
    assert 1 <= spec["parallelism"] <= spec["completions"]
    # Retries per index need pods that are not restarted in place.
    assert spec["backoffLimitPerIndex"] >= 1 and spec["template"]["spec"]["restartPolicy"] == "Never"
    env = {variable["name"]: variable for variable in worker(job())["env"]}
    index = env[sweep_worker.ENV_DEFAULTS["index"]]
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == COMPLETION_INDEX_ANNOTATION


def test_worker_gets_every_setting_from_the_config_map_or_the_secret():
    container, generated = worker(job()), kustomization()
    (config,), (secret,) = generated["configMapGenerator"], generated["secretGenerator"]
    config_keys = env_file(SWEEP_DIR / config["envs"][0]).keys()
    secret_keys = env_file(SWEEP_DIR / "secrets.env.example").keys()
    assert secret["envs"] == ["secrets.env"]
    env = {variable["name"]: variable for variable in container["env"]}
    assert set(sweep_worker.ENV_DEFAULTS.values()) <= env.keys()
    for name, variable in env.items():
        reference = variable.get("valueFrom", {})
        if "configMapKeyRef" in reference:
            key_ref = reference["configMapKeyRef"]
            assert key_ref["name"] == config["name"] and key_ref["key"] in config_keys, name
        if "secretKeyRef" in reference:
            key_ref = reference["secretKeyRef"]
            assert key_ref["name"] == secret["name"] and key_ref["key"] in secret_keys, name
    # The token-bearing URL and the remote's keys are secrets, never ConfigMap values.
    assert {"RAKUTEN_SWEEP_REPO", "AWS_SECRET_ACCESS_KEY"} <= set(secret_keys)
    assert not {"RAKUTEN_SWEEP_REPO", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"} & set(config_keys)
    assert all("secretKeyRef" in env[name]["valueFrom"] for name in ("RAKUTEN_SWEEP_REPO", "AWS_SECRET_ACCESS_KEY"))


def test_worker_runs_the_sweep_worker_in_the_pipeline_image_with_git():
    container = worker(job())
    assert container["args"] == ["python", "-m", sweep_worker.__name__]
    assert container["image"].split(":")[0] in {image["name"] for image in kustomization()["images"]}
    # The image compose builds from that Dockerfile must install git: the worker clones.
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"].values()
    (service,) = [service for service in services
                  if service.get("image", "").split(":")[0] == container["image"].split(":")[0]]
    dockerfile = (REPO_ROOT / service["build"]["dockerfile"]).read_text()
    runtime = dockerfile[dockerfile.rindex("FROM "):]
    assert re.search(r"apt-get install [^\n]*\bgit=", runtime), f"{service['build']['dockerfile']} lacks git"


def test_worker_is_non_root_with_writable_volumes_only_where_it_writes():
    pod = job()["spec"]["template"]["spec"]
    container = worker(job())
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    # The clone, git's and DVC's home, temporary files and DVC's site cache.
    assert {env["RAKUTEN_SWEEP_WORKDIR"], env["HOME"], "/tmp", "/var/tmp"} <= mounts
    volumes = {volume["name"] for volume in pod["volumes"]}
    assert {mount["name"] for mount in container["volumeMounts"]} <= volumes
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys()
