"""The history table and QA sampling (PRODUCT.md §4), read from the interactions view
(projections/interactions.py).

History: every call and conversation, oldest start first (ties by "<kind>:<id>"), one row
each with the outcome that stands (or ``-``), every selection (a kept-active
conversation's, late results), the corrections with both values, agent, times, duration and
references. Pages walk the ``z:`` sorted set -- or the ``s:<code>`` one when filtering by an
outcome -- from an opaque cursor (the last row's start and member), so a page is stable
while interactions are added later: a row never moves.

Sampling: the interactions that show an outcome (any of their selections, as corrected)
and started in a tenant-local date range, in history order; ``random.Random(seed)`` draws
N of them, so the same seed over the same candidates gives the same sample.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal, cast
from zoneinfo import ZoneInfo

import msgspec
import redis

from events.keys import ShardKeys
from projections import cold_index
from projections.interactions import NO_OUTCOME, Correction, Record, Reference, key, micros, records, time_zone

Kind = Literal["call", "conversation"]
CHUNK = 500


class HistoryOutcome(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    selected_at: datetime
    actor: str
    agent: str | None
    late: bool
    corrected: bool
    revenue: Decimal | None


class HistoryRow(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    id: str
    project: str
    channel: str
    direction: str | None
    contact_id: str | None
    agent: str | None
    #: the outcome that stands (a conversation's latest, its closing one once closed) or "-"
    outcome: str
    started_at: datetime
    answered_at: datetime | None
    finished_at: datetime | None
    #: start to end (call) or close (conversation); None while it goes on
    duration_seconds: float | None
    telephony_status: str | None
    termination_reason: str | None
    outcomes: list[HistoryOutcome]
    corrections: list[Correction]
    references: list[Reference]


def row(r: Record) -> HistoryRow:
    o = r.outcome
    end = r.finished_at
    return HistoryRow(
        kind=r.kind,
        id=r.id,
        project=r.project,
        channel=r.channel,
        direction=r.direction,
        contact_id=r.contact,
        agent=r.agent,
        outcome=o.code if o is not None else NO_OUTCOME,
        started_at=r.started_at,
        answered_at=r.answered_at,
        finished_at=end,
        duration_seconds=(end - r.started_at).total_seconds() if end is not None else None,
        telephony_status=r.telephony_status if r.kind == "call" else None,
        termination_reason=r.termination_reason,
        outcomes=[
            HistoryOutcome(
                code=s.code,
                selected_at=s.at,
                actor=s.actor,
                agent=s.agent,
                late=s.late,
                corrected=s.corrected,
                revenue=s.revenue,
            )
            for s in r.selections
        ],
        corrections=list(r.corrections),
        references=list(r.references),
    )


# -- cursor and range ----------------------------------------------------------------------------------


class BadCursor(ValueError):
    pass


def encode_cursor(score: int, member: str) -> str:
    """Opaque to clients: the last row's start (epoch microseconds) and member."""
    return base64.urlsafe_b64encode(msgspec.json.encode([score, member])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        score, member = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(score, int) or not isinstance(member, str):
            raise TypeError
        return score, member
    except (ValueError, TypeError, msgspec.DecodeError) as error:
        raise BadCursor("cursor is not one this API gave") from error


def local_range(tz: str, date_from: date | None, date_to: date | None) -> tuple[int | None, int | None]:
    """Start scores of a tenant-local date range: [first midnight, the midnight after last)."""
    zone = ZoneInfo(tz)
    lo = micros(datetime.combine(date_from, time(), zone)) if date_from is not None else None
    hi = micros(datetime.combine(date_to + timedelta(days=1), time(), zone)) - 1 if date_to is not None else None
    return lo, hi


def walk(client: redis.Redis, index: str, after: tuple[int, str] | None, hi: int | None) -> Iterator[tuple[int, str]]:
    """(score, member) of an index in (score, member) order, strictly after ``after``, up to
    ``hi``; read in chunks. A chunk's last score group may be cut by LIMIT, so it is left to
    the next step, which reads that score's members whole."""
    top: float | str = "+inf" if hi is None else hi
    score, member = after if after is not None else (None, "")
    while True:
        if score is not None:
            ties = sorted(m.decode() for m in cast(list[bytes], client.zrangebyscore(index, score, score)))
            for m in ties:
                if m > member:
                    yield score, m
            low: str = f"({score}"
        else:
            low = "-inf"
        chunk = cast(
            list[tuple[bytes, float]], client.zrangebyscore(index, low, top, start=0, num=CHUNK, withscores=True)
        )
        if not chunk:
            return
        last = int(chunk[-1][1])
        whole = len(chunk) < CHUNK
        for raw, s in chunk:
            if whole or int(s) != last:
                yield int(s), raw.decode()
        if whole:
            return
        score, member = last, ""


@dataclass(frozen=True)
class HistoryFilter:
    project: str | None = None
    agent: str | None = None
    outcome: str | None = None
    kind: Kind | None = None

    def matches(self, r: Record) -> bool:
        return (
            (self.project is None or r.project == self.project)
            and (self.agent is None or r.agent == self.agent or any(s.agent == self.agent for s in r.selections))
            and (self.outcome is None or self.outcome in r.codes or (self.outcome == NO_OUTCOME and not r.codes))
            and (self.kind is None or r.kind == self.kind)
        )


class HistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    rows: list[HistoryRow]
    #: give it back as ``cursor`` for the next page; None on the last page
    next_cursor: str | None


def history(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    *,
    f: HistoryFilter,
    date_from: date | None = None,
    date_to: date | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> HistoryPage:
    """One page of the history table (raises BadCursor for a cursor this API did not give)."""
    after = decode_cursor(cursor) if cursor else None
    lo, hi = local_range(time_zone(client, keys, tenant), date_from, date_to)
    if after is None and lo is not None:
        after = (lo - 1, "\uffff")  # everything from the first day's midnight on
    by_outcome = f.outcome is not None and f.outcome != NO_OUTCOME
    index = key(keys, "s", tenant, f.outcome) if by_outcome and f.outcome else key(keys, "z", tenant)
    rows: list[HistoryRow] = []
    batch: list[tuple[int, str]] = []

    def flush() -> bool:
        for _, r in zip(batch, records(client, keys, tenant, [m for _, m in batch]), strict=True):
            if r is not None and f.matches(r):
                rows.append(row(r))
                if len(rows) > limit:
                    return True
        batch.clear()
        return False

    code = f.outcome if by_outcome else None
    archived = cold_index.archived_entries(client, keys, tenant, code, after, hi)  # docs/archive.md
    for entry in cold_index.merged(walk(client, index, after, hi), archived):
        batch.append(entry)
        if len(batch) >= CHUNK and flush():
            break
    else:
        flush()
    if len(rows) > limit:
        # one row more than the page says there is a next page; it starts after the page's last
        page = rows[:limit]
        tail = page[-1]
        return HistoryPage(rows=page, next_cursor=encode_cursor(micros(tail.started_at), f"{tail.kind}:{tail.id}"))
    return HistoryPage(rows=rows, next_cursor=None)


# -- sampling --------------------------------------------------------------------------------------------


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    outcome_code: str
    seed: int
    #: interactions that qualified (the sample is drawn from these)
    population: int
    rows: list[HistoryRow]


def draw(candidates: list[str], n: int, seed: int) -> list[str]:
    """N of the candidates (in a stable order), the same N for the same seed."""
    return random.Random(seed).sample(candidates, min(n, len(candidates)))


def sample(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    *,
    outcome_code: str,
    date_from: date,
    date_to: date,
    n: int,
    seed: int,
) -> Sample:
    """N random interactions showing the outcome, started in the tenant-local date range,
    with their recording/transcript references (attached late too)."""
    lo, hi = local_range(time_zone(client, keys, tenant), date_from, date_to)
    assert lo is not None
    after = (lo - 1, "\uffff")
    archived = cold_index.archived_entries(client, keys, tenant, outcome_code, after, hi)  # docs/archive.md
    found = [m for _, m in cold_index.merged(walk(client, key(keys, "s", tenant, outcome_code), after, hi), archived)]
    candidates = cold_index.showing(client, keys, tenant, outcome_code, found) if archived else found
    chosen = draw(candidates, n, seed)
    return Sample(
        outcome_code=outcome_code,
        seed=seed,
        population=len(candidates),
        rows=[row(r) for r in records(client, keys, tenant, chosen) if r is not None],
    )
