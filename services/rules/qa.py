"""QA verdicts (PRODUCT.md §4): a reviewer confirms or disputes the outcome an interaction
shows, naming the outcome it should have been. Pure: state in, events out.

The verdict is an event on the interaction's own aggregate, so it is checked against the
outcome as it stands and a concurrent correction makes the save decide again. A reviewer
may record another verdict later: reports keep each reviewer's latest one per interaction
(projections/interactions.py).
"""

from __future__ import annotations

from typing import Literal

from events.codec import DomainEvent
from events.types import QaVerdictRecorded
from services.catalogue import Catalogue, active_set
from services.errors import InvalidVerdict, NothingToReview, OutcomeNotInProject
from services.interactions import Call, Conversation
from services.rules import Context, make

Verdict = Literal["confirmed", "disputed"]


def reviewed_outcome(interaction: Call | Conversation) -> str | None:
    """The outcome a verdict is about: a call's outcome, a conversation's closing one (as
    corrected)."""
    standing = interaction.outcome if isinstance(interaction, Call) else interaction.closing_outcome
    return standing.code if standing is not None else None


def check_verdict(
    catalogue: Catalogue, project_id: str, outcome: str, verdict: Verdict, should_have_been: str | None
) -> None:
    """Confirmed names no other outcome; disputed names one of the project's outcomes, not
    the one reviewed."""
    if verdict == "confirmed":
        if should_have_been is not None:
            raise InvalidVerdict("a confirmed verdict names no should_have_been outcome")
        return
    if should_have_been is None:
        raise InvalidVerdict("a disputed verdict names the outcome it should have been (should_have_been)")
    if should_have_been == outcome:
        raise InvalidVerdict(f"should_have_been {should_have_been!r} is the outcome under review")
    if should_have_been not in active_set(catalogue, project_id):
        raise OutcomeNotInProject(
            f"outcome {should_have_been!r} is not in the active outcome set of project {project_id!r}"
        )


def record_verdict(
    catalogue: Catalogue,
    interaction: Call | Conversation,
    ctx: Context,
    *,
    verdict: Verdict,
    should_have_been: str | None = None,
    note: str = "",
) -> list[DomainEvent]:
    kind = "call" if isinstance(interaction, Call) else "conversation"
    external_id = interaction.call_id if isinstance(interaction, Call) else interaction.conversation_id
    outcome = reviewed_outcome(interaction)
    if outcome is None:
        raise NothingToReview(f"{kind} {external_id!r} has no outcome to review")
    check_verdict(catalogue, interaction.project_id, outcome, verdict, should_have_been)
    return [
        make(
            QaVerdictRecorded,
            interaction.id,
            interaction.version + 1,
            ctx,
            interaction=kind,
            interaction_id=external_id,
            project_id=interaction.project_id,
            outcome_code=outcome,
            verdict=verdict,
            should_have_been=should_have_been,
            note=note,
        )
    ]
