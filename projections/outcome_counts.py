"""Per-project call outcome counts: the walking skeleton's read model.

One hash per tenant and project: field = outcome code, value = calls with that outcome
now (a correction moves a call from its previous outcome to the new one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import redis

from events.codec import DomainEvent
from events.keys import ShardKeys
from events.types import OutcomeCorrected, OutcomeSelected
from projections.base import Increment

NAME = "outcome-counts"


def counts_key(keys: ShardKeys, tenant_id: str, project_id: str) -> str:
    return f"{keys.view(NAME)}{tenant_id}:{project_id}"


#: the only events that move the counts: the view decodes no others
COUNTED = frozenset({OutcomeSelected.type_name, OutcomeCorrected.type_name})


def count_outcomes(keys: ShardKeys, event: DomainEvent) -> Iterable[Increment]:
    if isinstance(event, OutcomeSelected) and event.interaction == "call" and not event.late:
        yield (counts_key(keys, event.tenant_id, event.project_id), event.outcome_code, 1)
    elif isinstance(event, OutcomeCorrected) and event.interaction == "call":
        key = counts_key(keys, event.tenant_id, event.project_id)
        if event.previous_code is not None:
            yield (key, event.previous_code, -1)
        yield (key, event.outcome_code, 1)


def outcome_counts(client: redis.Redis, keys: ShardKeys, tenant_id: str, project_id: str) -> dict[str, int]:
    raw = cast(dict[bytes, bytes], client.hgetall(counts_key(keys, tenant_id, project_id)))
    return {code.decode(): int(n) for code, n in sorted(raw.items()) if int(n)}
