"""Shared test helpers: a ledger world on its own shard, processes, waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from events.types import OutcomeDefinition, OutcomeFlags, ProjectSettings
from services.config import Settings
from services.rules import Context
from services.rules.interactions import Choice
from services.runtime import Runtime

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


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
    ledger = runtime.ledger(tenant)
    ctx = Context(tenant, "agent:anna", datetime.now(UTC))
    ledger.start_call(ctx, call_id=call_id, project_id="winter", direction="outbound", occurred_at=T0)
    ledger.end_call(ctx, call_id=call_id, occurred_at=T0 + timedelta(minutes=3))
    ledger.select_call_outcome(ctx, call_id=call_id, choice=Choice(code, T0 + timedelta(minutes=3, seconds=5)))


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
