"""Shared test helpers: a ledger world on its own shard, processes, waiting."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.types import OutcomeDefinition, OutcomeFlags, ProjectSettings
from services.config import Settings
from services.ledger import Ledger
from services.rules import Context, interactions
from services.rules.interactions import Choice
from services.runtime import Runtime

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def all_on_cluster() -> bool:
    """``OUTCOMES_TEST_REDIS=cluster``: every test runs on the Redis Cluster (tests/conftest.py)."""
    return os.environ.get("OUTCOMES_TEST_REDIS") == "cluster"


#: run a test on the suite's Redis and on the 3-master Redis Cluster (once when all runs on it)
ON_BOTH = pytest.mark.parametrize("redis_backend", ["cluster"] if all_on_cluster() else ["redis", "cluster"])


def new_runtime(redis_url: str, shard: str) -> Runtime:
    return Runtime(Settings(redis_url=redis_url, shard=shard, key_prefix="ol" + uuid.uuid4().hex[:6]))


def seed_project(runtime: Runtime, tenant: str, codes: tuple[str, ...] = ("SALE", "NO_SALE")) -> str:
    """A tenant with outcomes and one project; returns the tenant's admin key."""
    _, admin = runtime.create_tenant(tenant, tenant.title())
    ledger = runtime.ledger(tenant)
    ctx = Context(tenant, "admin:test", datetime.now(UTC))
    for code in codes:
        ledger.define_outcome(
            ctx, OutcomeDefinition(code=code, name=code.title(), flags=OutcomeFlags(success=code == "SALE"))
        )
    ledger.create_project(ctx, "winter", ProjectSettings(name="Winter", direction="outbound"))
    return admin


def call_with_outcome(runtime: Runtime, tenant: str, call_id: str, code: str) -> None:
    selected_call(runtime.ledger(tenant), tenant, call_id, code, project_id="winter")


def corrected_call(
    runtime: Runtime, tenant: str, call_id: str, code: str, at: datetime, recorded_at: datetime | None = None
) -> None:
    """Supervisor sue corrects the call's outcome to ``code`` (selected at ``at``), recorded
    at ``recorded_at`` (default: now)."""
    ctx = Context(tenant, "supervisor:sue", recorded_at or datetime.now(UTC))
    runtime.ledger(tenant).call_fact(
        ctx,
        call_id,
        lambda cat, call, conv: interactions.correct_outcome(
            cat, call, ctx, Choice(code, at), reason="QA review", conversation=conv
        ),
    )


def selected_call(
    ledger: Ledger,
    tenant: str,
    call_id: str,
    code: str,
    *,
    project_id: str,
    contact_id: str | None = None,
    contact_number: str | None = None,
    ended_after: timedelta = timedelta(minutes=3),
    selected_after: timedelta = timedelta(minutes=3, seconds=5),
) -> None:
    """An outbound call started at T0 by agent anna, ended, and given its outcome."""
    ctx = Context(tenant, "agent:anna", datetime.now(UTC))
    ledger.start_call(
        ctx,
        call_id=call_id,
        project_id=project_id,
        direction="outbound",
        occurred_at=T0,
        contact_id=contact_id,
        contact_number=contact_number,
    )
    ledger.end_call(ctx, call_id=call_id, occurred_at=T0 + ended_after)
    ledger.select_call_outcome(ctx, call_id=call_id, choice=Choice(code, T0 + selected_after))


def role_keys(client: Any, admin_secret: str, roles: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Authorization headers of the admin and of a new key per role, by role name (through the API)."""
    keys = {"admin": {"Authorization": f"Bearer {admin_secret}"}}
    for role in roles:
        secret = client.post("/v1/keys", headers=keys["admin"], json={"role": role}).json()["secret"]
        keys[role] = {"Authorization": f"Bearer {secret}"}
    return keys


def selected_for_contacts(ledger: Ledger, tenant: str, code: str, numbers: range, project_id: str = "p") -> None:
    """For each n: call c<n> to contact k<n> (number +35840<n>) ended and given the outcome."""
    one = timedelta(minutes=1)
    for n in numbers:
        selected_call(
            ledger, tenant, f"c{n}", code, project_id=project_id, contact_id=f"k{n}",
            contact_number=f"+35840{n:07d}", ended_after=one, selected_after=one,
        )  # fmt: skip


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
