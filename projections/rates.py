"""The rates of PRODUCT.md §4 per project per day or over a rolling 30 days, read from the
interactions view (projections/interactions.py). The readings are tests/report_oracle.py's
(``rates`` and its docstring), which this query must equal.

The query reads the records of the project's days in the period (``p:`` hashes, then one
HMGET), computes with pure functions below, and asks the contact index only for the
conversations that could be first-call resolutions. Its cost grows with the project's
interactions in the period (a 30-day report of a large project reads 30 days of records);
pre-aggregating per day would not give exact averages after corrections and late results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal, cast

import msgspec
import redis

from events.keys import ShardKeys
from projections import cold_index
from projections.interactions import Flags, Record, Selection, key, micros, records

AsDefined = Literal["then", "now"]
#: (project or None for a global outcome, code) -> flags as defined now
Catalogue = dict[tuple[str | None, str], Flags]
FCR_WINDOW = timedelta(days=7)


class Rates(msgspec.Struct, frozen=True, kw_only=True):
    """The rates for one project and period; a rate is None when its denominator is 0.
    Numerators and denominators are given with them."""

    calls: int
    live_answered: int
    contact_calls: int
    presentation_calls: int
    success_calls: int
    abandoned_calls: int
    revenue: Decimal
    contact_rate: float | None
    presentation_rate: float | None
    success_rate: float | None
    abandoned_rate: float | None
    average_handle_seconds: float | None
    average_wrap_up_seconds: float | None
    fcr_conversations: int
    closed_conversations: int
    first_call_resolution: float | None


@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @staticmethod
    def of(day: date | None, rolling_30_days_ending: date | None) -> Period:
        """One day, or the 30 days ending on a date (that date and the 29 before)."""
        if (day is None) == (rolling_30_days_ending is None):
            raise ValueError("give a day or rolling_30_days_ending")
        if day is not None:
            return Period(day, day)
        assert rolling_30_days_ending is not None
        return Period(rolling_30_days_ending - timedelta(days=29), rolling_30_days_ending)

    def days(self) -> list[str]:
        return [(self.first + timedelta(days=n)).isoformat() for n in range((self.last - self.first).days + 1)]


# -- pure ---------------------------------------------------------------------------------------------


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def standing(r: Record) -> list[Selection]:
    """The selections that stand on a call: its outcome (as corrected) and late results."""
    o = r.outcome
    return [*([o] if o is not None else []), *(s for s in r.selections if s.late)]


def flags(s: Selection, project: str, as_defined: AsDefined, now: Catalogue) -> Flags:
    if as_defined == "now":
        return now.get((project, s.code)) or now.get((None, s.code)) or s.flags
    return s.flags


def has_flag(r: Record, name: str, as_defined: AsDefined, now: Catalogue) -> bool:
    return any(getattr(flags(s, r.project, as_defined, now), name) for s in standing(r))


def handle_and_wrap(r: Record) -> tuple[float | None, float | None]:
    """Handle time (talk + wrap-up) and wrap-up time of a live-answered call that ended;
    wrap-up runs from the end to the selection (0 when selected before the end), and a call
    without an outcome has none (its handle time is its talk time)."""
    if r.answered_at is None or r.ended_at is None:
        return None, None
    talk = (r.ended_at - r.answered_at).total_seconds()
    o = r.outcome
    if o is None:
        return talk, None
    wrap = max(0.0, (o.at - r.ended_at).total_seconds())
    return talk + wrap, wrap


def fcr_candidate(r: Record, as_defined: AsDefined, now: Catalogue) -> bool:
    """A closed conversation whose closing outcome (as corrected) is a first-call resolution."""
    o = r.outcome
    return r.closed_at is not None and o is not None and flags(o, r.project, as_defined, now).first_call_resolution


def compute(
    found: Sequence[Record], resolved: int, as_defined: AsDefined = "then", now: Catalogue | None = None
) -> Rates:
    """The rates of the period's records; ``resolved`` counts the FCR candidates with no
    further conversation (the query asks the contact index)."""
    cat = now or {}
    calls = [r for r in found if r.kind == "call"]
    live = [c for c in calls if c.telephony_status == "person"]
    contact = sum(has_flag(c, "contact", as_defined, cat) for c in calls)
    presentation = sum(has_flag(c, "presentation", as_defined, cat) for c in calls)
    success = sum(has_flag(c, "success", as_defined, cat) for c in calls)
    abandoned = sum(c.telephony_status == "drop_hang_up" and not c.agent_connected for c in calls)
    revenue = sum((s.revenue or Decimal(0) for c in calls for s in standing(c)), Decimal(0))
    times = [handle_and_wrap(c) for c in live]
    closed = sum(r.kind == "conversation" and r.closed_at is not None for r in found)
    return Rates(
        calls=len(calls),
        live_answered=len(live),
        contact_calls=contact,
        presentation_calls=presentation,
        success_calls=success,
        abandoned_calls=abandoned,
        revenue=revenue,
        contact_rate=_ratio(contact, len(live)),
        presentation_rate=_ratio(presentation, contact),
        success_rate=_ratio(success, contact),
        abandoned_rate=_ratio(abandoned, len(live)),
        average_handle_seconds=_mean([h for h, _ in times if h is not None]),
        average_wrap_up_seconds=_mean([w for _, w in times if w is not None]),
        fcr_conversations=resolved,
        closed_conversations=closed,
        first_call_resolution=_ratio(resolved, closed),
    )


# -- the query ------------------------------------------------------------------------------------------


def catalogue(client: redis.Redis, keys: ShardKeys, tenant: str) -> Catalogue:
    raw = cast(Mapping[bytes, bytes], client.hgetall(key(keys, "o", tenant)))
    out: Catalogue = {}
    for k, v in raw.items():
        project, code = msgspec.json.decode(k)
        out[(project, code)] = msgspec.json.decode(v, type=Flags)
    return out


def period_records(client: redis.Redis, keys: ShardKeys, tenant: str, project: str, period: Period) -> list[Record]:
    pipe = client.pipeline(transaction=False)
    for day in period.days():
        pipe.hkeys(key(keys, "p", tenant, project, day))
    members = {m.decode() for found in pipe.execute() for m in found}
    members |= cold_index.period_members(client, keys, tenant, project, period.days())  # docs/archive.md
    return [r for r in records(client, keys, tenant, sorted(members)) if r is not None]


def _window(closed_at: datetime) -> tuple[int, int]:
    return micros(closed_at), micros(closed_at + FCR_WINDOW)


def resolved_count(client: redis.Redis, keys: ShardKeys, tenant: str, candidates: Sequence[Record]) -> int:
    """Candidates after whose close no other conversation with the contact started in the
    project within 7 days (a conversation without a contact cannot have a further one)."""
    with_contact = [c for c in candidates if c.contact is not None]
    pipe = client.pipeline(transaction=False)
    for c in with_contact:
        assert c.closed_at is not None and c.contact is not None
        lo, hi = _window(c.closed_at)
        pipe.zrangebyscore(key(keys, "k", tenant, c.project, c.contact), lo, hi)
    further = [{m.decode() for m in found} - {c.id} for c, found in zip(with_contact, pipe.execute(), strict=True)]
    return (len(candidates) - len(with_contact)) + sum(not f for f in further)


def rates(
    client: redis.Redis,
    keys: ShardKeys,
    tenant: str,
    *,
    project: str,
    day: date | None = None,
    rolling_30_days_ending: date | None = None,
    as_defined: AsDefined = "then",
) -> Rates:
    """The project's rates for a tenant-local day or the 30 days ending on a date."""
    period = Period.of(day, rolling_30_days_ending)
    found = period_records(client, keys, tenant, project, period)
    now = catalogue(client, keys, tenant) if as_defined == "now" else {}
    candidates = [r for r in found if r.kind == "conversation" and fcr_candidate(r, as_defined, now)]
    return compute(found, resolved_count(client, keys, tenant, candidates), as_defined, now)
