"""Dead letters over HTTP (admins and supervisors): the log entries an action worker gave
up on after ``OUTCOMES_MAX_ATTEMPTS`` failures (docs/actions.md), the caller's tenant's only.

Requeueing stays with operators (``outcomes dlq requeue``): it runs the action again -- an
SMS or a webhook delivery with its retries and backoff -- which is a worker's job, not an
HTTP request's."""

from __future__ import annotations

from litestar import Router, get
from litestar.datastructures import State

from services.api.common import Principal, in_thread, runtime_of
from services.errors import Forbidden, NotFound
from services.permissions import Role
from workers.actions import DeadLetter, dead_letter, dead_letters

#: who reads them: not a row of PRODUCT.md §1's table but operations, like ``outcomes dlq``
READERS = frozenset({Role.ADMIN, Role.SUPERVISOR})


def _require_reader(principal: Principal) -> None:
    if principal.key.role not in READERS:
        raise Forbidden(f"role {principal.key.role.value!r} may not read dead letters (admins and supervisors may)")


@get("/dead-letters", operation_id="listDeadLetters", summary="The tenant's dead-lettered actions, oldest first")
async def list_dead_letters(principal: Principal, state: State) -> list[DeadLetter]:
    _require_reader(principal)
    runtime = runtime_of(state)
    keys = await in_thread(runtime.shard_keys, principal.tenant_id)
    return await in_thread(dead_letters, runtime.client, keys, principal.tenant_id)


@get("/dead-letters/{entry_id:str}", operation_id="showDeadLetter", summary="One dead-lettered action")
async def show_dead_letter(entry_id: str, principal: Principal, state: State) -> DeadLetter:
    _require_reader(principal)
    runtime = runtime_of(state)
    keys = await in_thread(runtime.shard_keys, principal.tenant_id)
    try:
        letter = await in_thread(dead_letter, runtime.client, keys, entry_id)
    except LookupError:
        letter = None
    if letter is None or letter.tenant != principal.tenant_id:  # another tenant's: as unknown
        raise NotFound(f"dead letter {entry_id!r} not found")
    return letter


router = Router(path="/v1", route_handlers=[list_dead_letters, show_dead_letter])
