"""Webhooks over HTTP (admin): register, change, delete, rotate the secret, list.

The secret is made here (the rules stay deterministic), returned once in the answer to
the registration or rotation, and never again: the list shows no secrets, and the log
holds them sealed (events/types.py ``WebhookRegistered``)."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request, Router, delete, get, post, put
from litestar.datastructures import State

from services.api import bodies
from services.api.common import Principal, in_thread, runtime_of
from services.api.config_routes import _admin
from services.catalogue import Catalogue, Webhook
from services.idempotency import Receipt
from services.permissions import Action
from services.rules import Context
from services.rules import webhooks as rules

Req = Request[Any, Any, Any]


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _filters(data: bodies.WebhookTargetBody) -> rules.Filters:
    return rules.Filters(project_ids=data.project_ids, outcome_codes=data.outcome_codes, event_types=data.event_types)


async def _with_secret(
    request: Req, state: State, principal: Principal, webhook_id: str, decide: Any
) -> bodies.WebhookSecretView:
    """Run a change that sets a new secret; the secret is shown only when this request made it."""
    secret = new_secret()
    made: list[bool] = []

    def run(c: Catalogue, ctx: Context) -> Any:
        made.append(True)  # not called when the request repeats an earlier one (Idempotency-Key)
        return decide(c, ctx, secret)

    receipt: Receipt = await _admin(request, state, principal, "webhook", webhook_id, run)
    return bodies.WebhookSecretView(webhook_id=webhook_id, version=receipt.version, secret=secret if made else None)


@post("/webhooks", status_code=201, operation_id="registerWebhook", summary="Register a webhook (secret shown once)")
async def register(
    data: bodies.WebhookBody, principal: Principal, state: State, request: Req
) -> bodies.WebhookSecretView:
    return await _with_secret(
        request,
        state,
        principal,
        data.webhook_id,
        lambda c, ctx, s: rules.register_webhook(c, ctx, data.webhook_id, data.url, _filters(data), s),
    )


@put("/webhooks/{webhook_id:str}", operation_id="changeWebhook", summary="Change a webhook's URL and filters")
async def change(
    webhook_id: str, data: bodies.WebhookTargetBody, principal: Principal, state: State, request: Req
) -> Receipt:
    return await _admin(
        request,
        state,
        principal,
        "webhook",
        webhook_id,
        lambda c, ctx: rules.change_webhook(c, ctx, webhook_id, data.url, _filters(data)),
    )


@delete("/webhooks/{webhook_id:str}", status_code=200, operation_id="deleteWebhook", summary="Delete a webhook")
async def remove(webhook_id: str, principal: Principal, state: State, request: Req) -> Receipt:
    return await _admin(
        request, state, principal, "webhook", webhook_id, lambda c, ctx: rules.delete_webhook(c, ctx, webhook_id)
    )


@post(
    "/webhooks/{webhook_id:str}/rotate-secret",
    status_code=200,
    operation_id="rotateWebhookSecret",
    summary="A new secret (shown once); the old one still signs during the grace period",
)
async def rotate(
    webhook_id: str, data: bodies.RotateSecretBody, principal: Principal, state: State, request: Req
) -> bodies.WebhookSecretView:
    return await _with_secret(
        request,
        state,
        principal,
        webhook_id,
        lambda c, ctx, s: rules.rotate_secret(c, ctx, webhook_id, s, data.grace_seconds),
    )


def _view(hook: Webhook) -> bodies.WebhookView:
    return bodies.WebhookView(
        webhook_id=hook.webhook_id,
        url=hook.url,
        project_ids=hook.project_ids,
        outcome_codes=hook.outcome_codes,
        event_types=hook.event_types,
        registered_at=hook.registered_at,
        previous_secret_valid_until=hook.previous_valid_until if hook.previous_secret else None,
    )


@get("/webhooks", operation_id="listWebhooks", summary="The tenant's webhooks (without secrets)")
async def list_webhooks(principal: Principal, state: State) -> list[bodies.WebhookView]:
    principal.require(Action.CONFIGURE)
    ledger = await in_thread(runtime_of(state).ledger, principal.tenant_id)
    catalogue = await in_thread(ledger.catalogue, principal.tenant_id)
    return [_view(h) for _, h in sorted(catalogue.webhooks.items())]


router = Router(path="/v1", route_handlers=[register, change, remove, rotate, list_webhooks])
