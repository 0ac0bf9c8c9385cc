"""compose.yaml is a valid Compose file and wires the services the way the ledger needs.

No Docker engine runs where the suite runs, so the file is checked against the Compose
Specification's JSON schema (vendored in ``tests/schemas``, see its README) instead of
``docker compose config``.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"
APP_SERVICES = ("api", "workers")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft7Validator:
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def _errors(validator: Draft7Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    ]


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _option(argv: list[str], name: str) -> str | None:
    """The value following ``name`` in ``argv`` (``--name value``), or None."""
    for index, part in enumerate(argv[:-1]):
        if part == name:
            return argv[index + 1]
    return None


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {str(name): str(value) for name, value in environment.items()}


def test_schema_is_the_draft7_compose_spec(schema: dict[str, Any]) -> None:
    Draft7Validator.check_schema(schema)
    assert "draft-07" in schema["$schema"]
    assert schema["title"] == "Compose Specification"


def test_compose_file_is_valid(validator: Draft7Validator, compose: dict[str, Any]) -> None:
    errors = _errors(validator, compose)
    print("\n".join(errors))
    assert errors == [], "compose.yaml violates the Compose Specification:\n" + "\n".join(errors)


def test_project_layout(compose: dict[str, Any]) -> None:
    assert compose["name"] == "outcome-ledger"
    assert set(compose["services"]) == {"redis", *APP_SERVICES}
    assert "redis-data" in compose["volumes"]


def test_redis_is_durable(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7.0"
    argv = _argv(redis["command"])
    joined = " ".join(argv)
    assert "--appendonly yes" in joined
    assert "--appendfsync always" in joined
    assert _option(argv, "--appendonly") == "yes"
    assert _option(argv, "--appendfsync") == "always"
    assert _option(argv, "--save") == ""
    assert "redis-data:/data" in redis["volumes"]
    assert "redis-cli ping" in " ".join(_argv(redis["healthcheck"]["test"]))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_use_the_redis_service(compose: dict[str, Any], name: str) -> None:
    services = compose["services"]
    url = urlsplit(_environment(services[name])["REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname == "redis"
    assert url.hostname in services
    assert (url.port or 6379) == 6379


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_redis(compose: dict[str, Any], name: str) -> None:
    services = compose["services"]
    assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["redis"]["healthcheck"]["test"], "service_healthy needs a healthcheck on redis"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_build_from_the_dockerfile(compose: dict[str, Any], name: str) -> None:
    build = compose["services"][name]["build"]
    if isinstance(build, str):
        build = {"context": build}
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def test_api_and_workers_commands(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert _argv(api["command"]) == ["outcomes", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert any(str(port).startswith("8000:8000") for port in api["ports"])
    health = " ".join(_argv(api["healthcheck"]["test"]))
    assert "python" in health
    assert "http://localhost:8000/health" in health
    assert _argv(compose["services"]["workers"]["command"]) == ["outcomes", "worker"]


def test_dockerfile_installs_the_project() -> None:
    assert DOCKERFILE.is_file()
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    assert "FROM python:3.11-slim" in lines
    assert any(line.startswith("COPY pyproject.toml") for line in lines)
    assert any("pip install --no-cache-dir ." in line for line in lines)
    assert any(line.startswith("USER ") and line.split()[1] not in {"root", "0"} for line in lines)
    assert 'CMD ["outcomes", "api", "--host", "0.0.0.0", "--port", "8000"]' in lines


def _ports_as_number(document: dict[str, Any]) -> None:
    document["services"]["api"]["ports"] = 8000


def _unknown_top_level_key(document: dict[str, Any]) -> None:
    document["servicez"] = {}


def _unknown_depends_on_condition(document: dict[str, Any]) -> None:
    document["services"]["workers"]["depends_on"]["redis"]["condition"] = "service_ready"


def _unknown_service_key(document: dict[str, Any]) -> None:
    document["services"]["redis"]["healthchek"] = {"test": ["CMD", "true"]}


@pytest.mark.parametrize(
    "breakage",
    [_ports_as_number, _unknown_top_level_key, _unknown_depends_on_condition, _unknown_service_key],
)
def test_broken_copies_fail_validation(validator: Draft7Validator, compose: dict[str, Any], breakage: Any) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert _errors(validator, broken), f"{breakage.__name__}: the validator accepted a broken compose file"
