"""Stateful API fuzzing: schemathesis follows the OpenAPI links the API serves.

The real app is served by uvicorn on a loopback port, against the suite's Redis, for a seeded
tenant (outcomes SALE, NO_SALE and CALLBACK, project ``winter``). Schemathesis loads the
served ``/schema/openapi.json`` and runs its state machine: scenarios start at a producer
(createProject, startConversation, defineGlobalOutcome, registerAgent, ...) and continue along the
links in ``services/api/openapi.py`` with the ids the responses returned (startCall and the call's
facts are reached that way).

Auth: configuration operations run with the tenant's admin key; interaction facts (``/v1/calls``,
``/v1/conversations``, ``/v1/contacts``) with a platform key acting for an agent, corrections
acting for a supervisor.

The run fails on any 5xx, on any failed check (responses the document does not describe, ...),
and when no step followed a link. Run alone: ``python -m pytest tests/test_schemathesis.py -q -s``
(it prints the seed, the statuses and every transition it followed). A bigger run:
``SCHEMATHESIS_EXAMPLES=1000 SCHEMATHESIS_STEPS=20 SCHEMATHESIS_MAX_SECONDS=600``;
``SCHEMATHESIS_SEED=<n>`` repeats a run's choices (default: a fixed seed), ``=random`` draws one;
``SCHEMATHESIS_MODE=positive`` generates valid inputs only; ``SCHEMATHESIS_VERBOSE=1`` prints the
statuses by operation.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.engine.errors import is_inconsistent_replay
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from services.api.openapi import links_of
from services.permissions import Role
from services.runtime import Runtime
from tests.helpers import new_runtime, seed_project
from tests.stack import Served

pytestmark = pytest.mark.slow

TENANT = "fuzz"
CODES = ("SALE", "NO_SALE", "CALLBACK")
PROJECT = "winter"
#: scenarios (each a producer, then up to STEPS steps along links); ~30 s on 2 cores
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "200"))
STEPS = int(os.environ.get("SCHEMATHESIS_STEPS", "12"))
#: the same inputs on every CI run (a failure there can be repeated); "random" for a fresh hunt
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261122")
#: no new step after this many seconds: the run ends there, passing if nothing failed so far
BUDGET_SECONDS = float(os.environ.get("SCHEMATHESIS_MAX_SECONDS", "90"))
#: "all" (mostly valid inputs, some invalid), "positive" (deeper flows) or "negative"
MODE = os.environ.get("SCHEMATHESIS_MODE", "all")
#: suites at most (each ends early when Hypothesis sees the stateful API answer a replay differently)
MAX_SUITES = max(50, EXAMPLES // 4)

#: checks run on every response (and ensure_resource_availability on reads: see _config)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "use_after_free",
)
#: paths whose operations report interaction facts: the platform key answers them
FACT_PATHS = ("/v1/calls", "/v1/conversations", "/v1/contacts")


class BudgetSpent(Exception):
    """The time budget is spent: stop the state machine at its next step."""


@pytest.fixture()
def seeded(redis_url: str, shard: str) -> Iterator[tuple[Runtime, str, str]]:
    runtime = new_runtime(redis_url, shard)
    admin = seed_project(runtime, TENANT, CODES)
    _, platform = runtime.registry.issue_key(TENANT, Role.PLATFORM)
    try:
        yield runtime, admin, platform
    finally:
        runtime.close()


def _config() -> schemathesis.Config:
    values: dict[str, Any] = {
        "checks": {
            name: {"enabled": name in CHECKS}
            for name in (*CHECKS, "positive_data_acceptance", "ensure_resource_availability")
        },
        # "created resource not found" only where a 404 can mean nothing else: a write's 404 may name an
        # id in its body (an unknown team, SMS template, ...) rather than the one the link supplied
        "operations": [{"include-method": "GET", "checks": {"ensure_resource_availability": {"enabled": True}}}],
        "phases": {"stateful": {"max-steps": STEPS, "inference": {"algorithms": []}}},
        # the auth provider below sets the keys; negative cases negate the documented inputs only
        "generation": {"database": "none", "with-security-parameters": False, "mode": MODE},
        # selected codes and project ids hit the seeded data part of the time (codes in paths do not:
        # a retired SALE would stay retired for the rest of the run); revenues include
        # the non-finite decimals msgspec accepts (NaN once made a 500)
        "dictionaries": {
            "codes": {"values": list(CODES)},
            "projects": {"values": [PROJECT]},
            "revenues": {"values": ["12.50", "0", "-5", "1E+3", "NaN", "sNaN", "Infinity"]},
        },
        "parameters": {
            "body.revenue": {"dictionary": "revenues", "probability": 0.8},
            "body.outcome_code": {"dictionary": "codes", "probability": 0.8},
            "body.project_id": {"dictionary": "projects", "probability": 0.5},
            "path.project_id": {"dictionary": "projects", "probability": 0.3},
        },
    }
    return schemathesis.Config.from_dict(values)


def test_stateful_fuzzing_finds_no_server_error(seeded: tuple[Runtime, str, str]) -> None:
    runtime, admin, platform = seeded
    with Served(runtime) as served:
        document = httpx.get(served.base + "/schema/openapi.json").json()
        assert "startCall" in links_of(document)["createProject"]

        schema = schemathesis.openapi.from_url(served.base + "/schema/openapi.json", config=_config())

        class Keys:
            """Admin key for configuration, platform key (acting for an agent or supervisor) for facts."""

            def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> dict[str, str]:
                if not case.path.startswith(FACT_PATHS):
                    return {"Authorization": f"Bearer {admin}"}
                acting_for = "supervisor:sam" if case.path.endswith("/correction") else "agent:anna"
                return {"Authorization": f"Bearer {platform}", "X-Acting-For": acting_for}

            def set(self, case: schemathesis.Case, data: dict[str, str], ctx: schemathesis.AuthContext) -> None:
                case.headers = {**(case.headers or {}), **data}

        schema.auth(refresh_interval=None)(Keys)

        statuses: Counter[tuple[str, int]] = Counter()
        followed: Counter[str] = Counter()
        server_errors: list[str] = []
        failures: list[str] = []
        scenarios = 0
        checks_run: Counter[str] = Counter()

        def after_validate(
            context: Any, case: schemathesis.Case, response: schemathesis.Response, results: list[Any]
        ) -> None:
            checks_run.update(result.name for result in results)

        schema.hooks.register_hook_with_name(after_validate, "after_validate")

        deadline = time.monotonic() + BUDGET_SECONDS

        class Workflow(schema.as_state_machine()):  # type: ignore[misc]
            def step(self, input: StepInput) -> StepOutput:
                if time.monotonic() > deadline:
                    raise BudgetSpent
                transition = input.transition
                if transition is not None and input.is_applied and not transition.is_inferred:
                    followed[transition.id] += 1
                return super().step(input)

            def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
                super().after_call(response, case)
                statuses[(f"{case.method} {case.path}", response.status_code)] += 1
                if response.status_code >= 500:
                    server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

            def validate_response(
                self,
                response: schemathesis.Response,
                case: schemathesis.Case,
                additional_checks: list[schemathesis.CheckFunction] | None = None,
                **kwargs: Any,
            ) -> None:
                try:
                    super().validate_response(response, case, additional_checks, **kwargs)
                except FailureGroup as exc:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}")
                    raise

            def teardown(self) -> None:
                nonlocal scenarios
                scenarios += 1
                super().teardown()

        started = time.monotonic()
        seed = random.randrange(2**32) if SEED == "random" else int(SEED)
        suite_seeds = random.Random(seed)  # one seed per suite, none shared with another run's
        suites = 0
        try:
            # The API keeps its state between scenarios, so Hypothesis may find a replayed scenario
            # taking another path (a second POST of the same id answers 409) and stop the suite as
            # "flaky"; like schemathesis' own runner, start another suite until the budget is spent.
            while scenarios < EXAMPLES and suites < MAX_SUITES and not failures and not server_errors:
                settings = hypothesis.settings(
                    max_examples=EXAMPLES - scenarios,
                    stateful_step_count=STEPS,
                    deadline=None,
                    database=None,
                    phases=[hypothesis.Phase.generate],
                    suppress_health_check=list(hypothesis.HealthCheck),
                )
                suites += 1
                try:
                    hypothesis.seed(suite_seeds.getrandbits(64))(Workflow).run(settings=settings)
                except BudgetSpent:
                    break
                except Exception as exc:
                    if not (isinstance(exc, hypothesis.errors.Flaky) or is_inconsistent_replay(exc)):
                        raise
        finally:
            elapsed = time.monotonic() - started
            by_status = Counter(status for (_, status) in statuses.elements())
            print(
                f"\nschemathesis {schemathesis.SCHEMATHESIS_VERSION}, seed {seed}: {scenarios} scenarios in "
                f"{suites} suites, {sum(statuses.values())} requests in {elapsed:.1f}s; "
                f"statuses {dict(sorted(by_status.items()))}\nchecks: {', '.join(CHECKS)}"
            )
            print(f"checks run: {dict(checks_run.most_common())}")
            print(f"stateful transitions followed along links: {sum(followed.values())}")
            for transition_id, count in followed.most_common():
                print(f"  {count:4d}  {transition_id}")
            if os.environ.get("SCHEMATHESIS_VERBOSE"):
                for (operation, status), count in sorted(statuses.items()):
                    print(f"  {count:4d}  {status}  {operation}")

    assert not server_errors, server_errors
    assert not failures, "\n".join(failures)
    assert sum(followed.values()) > 0, "no step followed a link"
