"""Outcome-mix alerts (PRODUCT.md §4): pure rules over a project's week against a baseline.

PRODUCT.md asks for alerts "when a rare negative outcome rises, when positive outcomes rise
while successes do not, and when the mix leaves the project's target beyond its tolerance";
only the last has numbers (the project's ``target_mix``). The thresholds of the other two
are the constants below, chosen as a contact-centre manager would read a weekly report:
small weeks say nothing (``MIN_INTERACTIONS``), a handful of cases is not a trend
(``MIN_OCCURRENCES``), and a rise must be both relative and in percentage points so that
1 % -> 2 % of a big week is noise while 1 % -> 6 % is not.

Shares are of a window's interactions (calls, or conversations) as the outcome mix counts
them (one per interaction, the outcome that stands, ``-`` included in the total).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from events.types import AlertRule, Interaction, OutcomeAlertRaised, TargetMix
from services.interactions import aggregate_id
from services.rules import Context, make

#: a window (a week, or the baseline weeks) must hold at least this many interactions
MIN_INTERACTIONS = 20
#: a negative outcome is rare when its baseline share is below this
RARE_SHARE = 0.05
#: a rare negative outcome "rises" when its share at least doubles ...
RISE_FACTOR = 2.0
#: ... and grows by at least 2 percentage points ...
RISE_POINTS = 0.02
#: ... with at least 5 interactions in the week
MIN_OCCURRENCES = 5
#: positive outcomes "rise" when their share grows by at least 5 percentage points ...
POSITIVE_RISE_POINTS = 0.05
#: ... while the success share grows by less than 1 point (or falls)
SUCCESS_STILL_POINTS = 0.01
#: the baseline: the weeks before the week checked
BASELINE_WEEKS = 4


@dataclass(frozen=True)
class Window:
    """A project's interactions of one kind in a period: how many, and per outcome code."""

    total: int
    counts: Mapping[str, int]

    def share(self, codes: Set[str]) -> float:
        if not self.total:
            return 0.0
        return sum(n for code, n in self.counts.items() if code in codes) / self.total


@dataclass(frozen=True)
class Finding:
    """What a rule found; ``raise_alert`` makes it an event."""

    rule: AlertRule
    outcome_code: str | None
    interactions: int
    observed_share: float
    expected_share: float
    threshold: float
    message: str


def rare_negative_rises(week: Window, baseline: Window, negative: Set[str]) -> list[Finding]:
    """Each negative outcome that was rare in the baseline and rose in the week."""
    if week.total < MIN_INTERACTIONS or baseline.total < MIN_INTERACTIONS:
        return []
    found = []
    for code in sorted(negative):
        was, now = baseline.share({code}), week.share({code})
        if (
            was < RARE_SHARE
            and week.counts.get(code, 0) >= MIN_OCCURRENCES
            and now >= RISE_FACTOR * was
            and now - was >= RISE_POINTS
        ):
            found.append(
                Finding(
                    "rare_negative_rise",
                    code,
                    week.total,
                    now,
                    was,
                    RISE_POINTS,
                    f"{code} (negative, rare) rose from {was:.1%} to {now:.1%} of {week.total} interactions",
                )
            )
    return found


def positive_without_success(week: Window, baseline: Window, positive: Set[str], success: Set[str]) -> list[Finding]:
    """Positive outcomes rose but successes did not: agents may be picking feel-good outcomes."""
    if week.total < MIN_INTERACTIONS or baseline.total < MIN_INTERACTIONS:
        return []
    pos_was, pos_now = baseline.share(positive), week.share(positive)
    ok_was, ok_now = baseline.share(success), week.share(success)
    if pos_now - pos_was < POSITIVE_RISE_POINTS or ok_now - ok_was >= SUCCESS_STILL_POINTS:
        return []
    return [
        Finding(
            "positive_without_success",
            None,
            week.total,
            pos_now,
            pos_was,
            POSITIVE_RISE_POINTS,
            f"positive outcomes rose from {pos_was:.1%} to {pos_now:.1%} while successes went "
            f"from {ok_was:.1%} to {ok_now:.1%}",
        )
    ]


def off_target(week: Window, target: TargetMix | None) -> list[Finding]:
    """Each outcome of the project's target mix whose share is further from it than the tolerance."""
    if target is None or week.total < MIN_INTERACTIONS:
        return []
    found = []
    for code, expected in sorted(target.shares.items()):
        share = week.share({code})
        if abs(share - expected) > target.tolerance:
            found.append(
                Finding(
                    "off_target",
                    code,
                    week.total,
                    share,
                    expected,
                    target.tolerance,
                    f"{code} is {share:.1%} of {week.total} interactions; the target is {expected:.1%} "
                    f"± {target.tolerance:.1%}",
                )
            )
    return found


def alert_id_of(project_id: str, interaction: Interaction, period: str, finding: Finding) -> str:
    """What makes an alert one alert: recorded at most once, however often it is found."""
    return f"{project_id}/{interaction}/{period}/{finding.rule}/{finding.outcome_code or '*'}"


def raise_alert(
    ctx: Context, *, project_id: str, interaction: Interaction, period: str, finding: Finding
) -> OutcomeAlertRaised:
    """The alert event, on an aggregate of its own at version 1 (a second save is refused)."""
    return make(
        OutcomeAlertRaised,
        aggregate_id(ctx.tenant_id, "alert", alert_id_of(project_id, interaction, period, finding)),
        1,
        ctx,
        project_id=project_id,
        interaction=interaction,
        rule=finding.rule,
        outcome_code=finding.outcome_code,
        period=period,
        interactions=finding.interactions,
        observed_share=finding.observed_share,
        expected_share=finding.expected_share,
        threshold=finding.threshold,
        message=finding.message,
    )
