"""The read models of a shard, in one list: the projection worker runs them, ``outcomes
replay`` rebuilds them."""

from __future__ import annotations

import redis

from events.codec import StructMapper
from events.keys import ShardKeys
from projections.alerts import NAME as ALERTS
from projections.alerts import AlertsView
from projections.base import View
from projections.follow_up_sla import NAME as FOLLOW_UP_SLA
from projections.follow_up_sla import FollowUpSlaView
from projections.interactions import NAME as INTERACTIONS
from projections.interactions import InteractionsView
from projections.outcome_counts import COUNTED, count_outcomes
from projections.outcome_counts import NAME as OUTCOME_COUNTS
from projections.outcome_mix import NAME as OUTCOME_MIX
from projections.outcome_mix import OutcomeMixView


def read_models(
    client: redis.Redis,
    keys: ShardKeys,
    mapper: StructMapper,
    *,
    follow: bool = True,
    batch_size: int = 1000,
    memory_cap: int | None = None,
) -> list[View]:
    """Every view of the shard; ``follow=False`` keeps each in the generation ``keys`` name;
    ``memory_cap``: how many entries the stateful views keep in memory between batches (None:
    each view's own default, sized for a long-running worker)."""
    caps = {} if memory_cap is None else {"memory_cap": memory_cap}
    return [
        View(OUTCOME_COUNTS, count_outcomes, client, keys, mapper, batch_size, follow=follow, topics=COUNTED),
        OutcomeMixView(client, keys, mapper, batch_size, follow=follow, **caps),
        InteractionsView(client, keys, mapper, batch_size, follow=follow, **caps),
        AlertsView(client, keys, mapper, batch_size, follow=follow),
        FollowUpSlaView(client, keys, mapper, batch_size, follow=follow),
    ]


def names() -> list[str]:
    """The views' names (what ``outcomes replay --view`` takes)."""
    return [OUTCOME_COUNTS, OUTCOME_MIX, INTERACTIONS, ALERTS, FOLLOW_UP_SLA]
