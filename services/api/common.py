"""What every handler shares: the principal, idempotency keys, running a command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException

from events.codec import now
from services.errors import BadRequest, Forbidden
from services.idempotency import Idempotency
from services.ledger import Ledger
from services.permissions import Action, Role, may
from services.registry import ApiKey, Authoriser
from services.rules import Context
from services.runtime import Runtime

T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    key: ApiKey
    #: who the request acts for: a platform key may act for an agent, a supervisor or "system"
    actor: str

    @property
    def tenant_id(self) -> str:
        return self.key.tenant_id

    def require(self, action: Action) -> None:
        if action is Action.CORRECT and self.key.role is Role.PLATFORM and not self.actor.startswith("supervisor:"):
            raise Forbidden("a platform key corrects outcomes only when acting for a supervisor (X-Acting-For)")
        if not may(self.key.role, action):
            raise Forbidden(f"role {self.key.role.value!r} may not {action.value}")

    def require_any(self, *actions: Action) -> None:
        if not any(may(self.key.role, a) for a in actions):
            raise Forbidden(f"role {self.key.role.value!r} may not {actions[0].value}")

    def context(self) -> Context:
        return Context(self.tenant_id, self.actor, now(), self.key.key_id)


def _actor(key: ApiKey, acting_for: str | None) -> str:
    if key.role is Role.PLATFORM and acting_for:
        kind, _, who = acting_for.partition(":")
        if acting_for == "system" or (kind in {"agent", "supervisor"} and who):
            return acting_for
        raise BadRequest("X-Acting-For must be 'agent:<id>', 'supervisor:<id>' or 'system'")
    if key.role is Role.PLATFORM:
        return "system"  # what the platform's dialer detected
    return f"{key.role.value}:{key.key_id}"


async def authenticate(request: Request[Any, Any, Any], state: State) -> Principal:
    runtime: Runtime = state.runtime
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise NotAuthorizedException("send 'Authorization: Bearer <API key>'")
    authorise: Authoriser = state.authoriser
    found = await authorise(secret.strip(), int(time.time()), runtime.settings.default_rate_limit)
    if found is None:
        raise NotAuthorizedException("unknown or revoked API key")
    key = runtime.admit(found)
    return Principal(key, _actor(key, request.headers.get("x-acting-for")))


async def idempotency(request: Request[Any, Any, Any]) -> Idempotency | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 200:
        raise BadRequest("Idempotency-Key must be 1-200 characters")
    body = await request.body()
    return Idempotency.of(key, request.method.encode(), request.url.path.encode(), body)


def runtime_of(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """eventsourcing is synchronous: commands run in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def command(
    request: Request[Any, Any, Any],
    state: State,
    principal: Principal,
    action: Action,
    run: Callable[[Ledger, Context, Idempotency | None], T],
) -> T:
    """Authorise, resolve the tenant's ledger, and run one Ledger command."""
    principal.require(action)
    runtime = runtime_of(state)
    key = await idempotency(request)
    ctx = principal.context()
    # one worker-thread hop: resolve the tenant's ledger and run the command
    return await in_thread(lambda: run(runtime.ledger(principal.tenant_id), ctx, key))
