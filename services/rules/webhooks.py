"""Webhook configuration rules (PRODUCT.md §3 "Webhooks"): pure functions, catalogue in,
events out. Admins only (the routes check). Secrets are made by the caller (the route), so
these stay deterministic; each event carries the secret sealed (see ``events.types``)."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from events.types import (
    WebhookChanged,
    WebhookDeleted,
    WebhookEventType,
    WebhookRegistered,
    WebhookSecretRotated,
    _CatalogueChange,
)
from services.catalogue import Catalogue, Webhook
from services.errors import NotFound, WebhookExists
from services.rules import Context, make
from services.rules.config import _finalise, _next, _project


class Filters(msgspec.Struct, frozen=True, kw_only=True):
    """What a webhook receives; an empty filter matches everything."""

    project_ids: tuple[str, ...] = ()
    outcome_codes: tuple[str, ...] = ()
    event_types: tuple[WebhookEventType, ...] = ()


def _check_filters(catalogue: Catalogue, filters: Filters) -> Filters:
    """Filters name what exists (a typo would silently match nothing); stored sorted, once each."""
    for project_id in filters.project_ids:
        _project(catalogue, project_id)
    known = set(catalogue.outcomes) | {code for p in catalogue.projects.values() for code in p.outcomes}
    for code in filters.outcome_codes:
        if code not in known:
            raise NotFound(f"outcome {code!r} not found")
    return Filters(
        project_ids=tuple(sorted(set(filters.project_ids))),
        outcome_codes=tuple(sorted(set(filters.outcome_codes))),
        event_types=tuple(sorted(set(filters.event_types))),
    )


def _existing(catalogue: Catalogue, webhook_id: str) -> Webhook:
    hook = catalogue.webhooks.get(webhook_id)
    if hook is None:
        raise NotFound(f"webhook {webhook_id!r} not found")
    return hook


def register_webhook(
    catalogue: Catalogue, ctx: Context, webhook_id: str, url: str, filters: Filters, secret: str
) -> list[_CatalogueChange]:
    if webhook_id in catalogue.webhooks:
        raise WebhookExists(f"webhook {webhook_id!r} already exists")
    return _set_target(WebhookRegistered, catalogue, ctx, webhook_id, url, filters, secret=secret)


def change_webhook(
    catalogue: Catalogue, ctx: Context, webhook_id: str, url: str, filters: Filters
) -> list[_CatalogueChange]:
    _existing(catalogue, webhook_id)
    return _set_target(WebhookChanged, catalogue, ctx, webhook_id, url, filters)


def _set_target(
    cls: type[WebhookRegistered | WebhookChanged],
    catalogue: Catalogue,
    ctx: Context,
    webhook_id: str,
    url: str,
    filters: Filters,
    **extra: str,
) -> list[_CatalogueChange]:
    """A registration or a change: the URL and the checked filters."""
    checked = msgspec.structs.asdict(_check_filters(catalogue, filters))
    event = make(cls, catalogue.id, _next(catalogue), ctx, webhook_id=webhook_id, url=url, **checked, **extra)
    return [_finalise(catalogue, event)]


def rotate_secret(
    catalogue: Catalogue, ctx: Context, webhook_id: str, secret: str, grace_seconds: int
) -> list[_CatalogueChange]:
    """The new secret signs from now on; the old one as well for ``grace_seconds``."""
    _existing(catalogue, webhook_id)
    until = ctx.recorded_at + timedelta(seconds=grace_seconds)
    event = make(
        WebhookSecretRotated,
        catalogue.id,
        _next(catalogue),
        ctx,
        webhook_id=webhook_id,
        secret=secret,
        previous_valid_until=until,
    )
    return [_finalise(catalogue, event)]


def delete_webhook(catalogue: Catalogue, ctx: Context, webhook_id: str) -> list[_CatalogueChange]:
    _existing(catalogue, webhook_id)
    return [_finalise(catalogue, make(WebhookDeleted, catalogue.id, _next(catalogue), ctx, webhook_id=webhook_id))]
