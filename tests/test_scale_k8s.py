"""Kubernetes, checked without a cluster: the Helm values for Dagster's official chart and the
Dockerfile of the code location.

The key sets below are copied from the chart's generated schema (dagster-io/dagster,
helm/dagster/values.schema.json at commit bdb8547f): a value the chart does not know is a typo the
chart would reject (`additionalProperties: false` on most objects). Remote `$ref`s to the Kubernetes
schemas cannot be resolved offline, so pod-spec pieces (volumes, env) are checked for shape only.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import jsonschema
import yaml

from nettrace_dagster.coordinator.quotas import RUN_TAG_LIMITS
from nettrace_dagster.instance import INSTANCE_CONFIG

ROOT = Path(__file__).resolve().parents[1]
VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())

CHART_TOP_LEVEL = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
    "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
    "telemetry", "serviceAccount", "global", "retention", "additionalInstanceConfig"}
_IMAGE = {"type": "object", "required": ["repository", "pullPolicy"], "properties": {
    "repository": {"type": "string"}, "tag": {"type": ["string", "integer", "null"]},
    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}}
USER_DEPLOYMENT = {
    "type": "object", "required": ["name", "image", "port"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string"}, "image": _IMAGE, "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
        "codeServerArgs": {"type": "array", "items": {"type": "string"}},
        "includeConfigInLaunchedRuns": {"type": "object", "required": ["enabled"],
                                        "properties": {"enabled": {"type": "boolean"}}},
        "deploymentNamespace": {"type": "string"}, "port": {"type": "integer"},
        "env": {"anyOf": [{"type": "object", "additionalProperties": {"type": "string"}},
                          {"type": "array", "items": {"type": "object", "required": ["name"]}}]},
        "envConfigMaps": {"type": "array", "items": {"type": "object"}},
        "envSecrets": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        **{k: {"type": "object"} for k in ("annotations", "nodeSelector", "affinity", "podSecurityContext",
                                           "securityContext", "resources", "livenessProbe", "readinessProbe",
                                           "startupProbe", "labels")},
        "tolerations": {"type": "array"}, "schedulerName": {"type": "string"},
        "volumeMounts": {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"]}},
        "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "initContainers": {"type": "array"}, "sidecarContainers": {"type": "array"}}}
POSTGRESQL = {"type": "object", "properties": {
    "image": {"type": "object"}, "enabled": {"type": "boolean"}, "postgresqlHost": {"type": "string"},
    "postgresqlUsername": {"type": "string"}, "postgresqlPassword": {"type": "string"},
    "postgresqlDatabase": {"type": "string"}, "postgresqlParams": {"type": "object"},
    "postgresqlScheme": {"type": "string"},
    "service": {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}}},
    "additionalProperties": False}


def test_values_use_only_keys_the_chart_knows() -> None:
    assert set(VALUES) <= CHART_TOP_LEVEL, set(VALUES) - CHART_TOP_LEVEL
    deployments = VALUES["dagster-user-deployments"]["deployments"]
    assert deployments
    for deployment in deployments:
        jsonschema.validate(deployment, USER_DEPLOYMENT)
    jsonschema.validate(VALUES["postgresql"], POSTGRESQL)
    assert VALUES["runLauncher"]["type"] in {"K8sRunLauncher", "CeleryK8sRunLauncher"}


def test_a_typo_is_caught() -> None:
    bad = dict(VALUES["dagster-user-deployments"]["deployments"][0], dagsterApiGrpcArg=["-m", "x"])
    try:
        jsonschema.validate(bad, USER_DEPLOYMENT)
    except jsonschema.ValidationError as exc:
        assert "dagsterApiGrpcArg" in str(exc.message)
    else:
        raise AssertionError("an unknown key passed")


def test_chart_queue_enforces_the_same_quotas_as_dagster_yaml() -> None:
    queue = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["tagConcurrencyLimits"] == RUN_TAG_LIMITS
    assert queue["maxConcurrentRuns"] == INSTANCE_CONFIG["concurrency"]["runs"]["max_concurrent_runs"]


def test_code_location_args_and_mounts_point_at_real_things() -> None:
    deployment = VALUES["dagster-user-deployments"]["deployments"][0]
    args = deployment["dagsterApiGrpcArgs"]
    module = args[args.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None
    home = next(e["value"] for e in deployment["env"] if e["name"] == "NETTRACE_HOME")
    assert home in {m["mountPath"] for m in deployment["volumeMounts"]}  # the shared state is on the volume
    assert {v["name"] for v in deployment["volumes"]} == {m["name"] for m in deployment["volumeMounts"]}


def test_dockerfile_copies_what_exists_and_installs_the_scale_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "'.[scale]'" in text and any(p.startswith("dagster-postgres==") for p in extras["scale"])
    cmd = re.search(r'^CMD \[(.+)\]$', text, flags=re.M).group(1)
    assert '"-m", "nettrace_dagster.definitions"' in cmd
