"""Every follow-up action of PRODUCT.md §3 end to end: selections over the real API process,
the effects made by the real ``outcomes worker`` process, through real Redis and real local
HTTP servers standing in for the SMS gateway and a webhook consumer."""

from __future__ import annotations

from typing import Any, cast

import httpx
import redis

from events.keys import ShardKeys
from services.webhook_signing import verify
from tests.helpers import ON_BOTH, wait_until
from tests.receiver import Receiver
from tests.stack import Stack

pytestmark = ON_BOTH

AT = "2026-11-30T09:00:00Z"
LATER = "2026-11-30T09:03:00Z"


def test_each_action_from_the_selection_to_its_effect(stack: Stack, redis_client: redis.Redis) -> None:
    with Receiver() as gateway, Receiver() as consumer:
        stack.env["OUTCOMES_SMS_GATEWAY"] = gateway.url
        admin_key = stack.cli("tenant", "create", "acme")
        stack.start_api()
        admin = {"Authorization": f"Bearer {admin_key}"}
        with httpx.Client(base_url=stack.base, timeout=10) as http:

            def ok(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
                r = http.request(method, path, headers=headers or admin, json=body)
                assert 200 <= r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
                return r.json()

            ok("POST", "/v1/teams", {"team_id": "care", "name": "Care"})
            ok("PUT", "/v1/sms-templates/thanks", {"body": "Thank you for your time"})
            ok("POST", "/v1/outcomes", {"code": "THANKS", "name": "Thanks", "sms_template": "thanks", "auto_send": True,
                                        "follow_up": {"owner_team": "care", "due_within_seconds": 3600}})  # fmt: skip
            dnc = {"do_not_call": {"numbers": "all", "scope": "tenant"}}
            ok("POST", "/v1/outcomes", {"code": "DO_NOT_CALL", "name": "Do not call", "contact_handling": dnc})
            ok("POST", "/v1/projects", {"project_id": "p", "name": "P", "direction": "outbound"})
            survey = {"redirect_to_flow": "survey", "applies_to": ["conversation"]}
            ok("POST", "/v1/projects/p/outcomes", {"code": "TO_SURVEY", "name": "To survey", **survey})
            hook = ok("POST", "/v1/webhooks", {"webhook_id": "crm", "url": consumer.url, "outcome_codes": ["THANKS"]})
            platform = ok("POST", "/v1/keys", {"role": "platform"})["secret"]
            agent = {"Authorization": f"Bearer {platform}", "X-Acting-For": "agent:anna"}
            stack.start_worker()

            ok("PUT", "/v1/contacts/k1", {"name": "Aino", "numbers": ["+358401234567"]}, agent)
            for call_id, code in (("c1", "THANKS"), ("c2", "DO_NOT_CALL")):
                ok("POST", "/v1/calls", {"call_id": call_id, "project_id": "p", "direction": "outbound",
                                         "occurred_at": AT, "contact_id": "k1"}, agent)  # fmt: skip
                ok("POST", f"/v1/calls/{call_id}/ended", {"occurred_at": LATER}, agent)
                ok("POST", f"/v1/calls/{call_id}/outcome", {"outcome_code": code, "occurred_at": LATER}, agent)
            ok("POST", "/v1/conversations", {"conversation_id": "v1", "project_id": "p", "channel": "sms",
                                             "occurred_at": AT, "contact_id": "k1"}, agent)  # fmt: skip
            ok("POST", "/v1/conversations/v1/outcome", {"outcome_code": "TO_SURVEY", "occurred_at": LATER}, agent)

            # SMS at the gateway, and SmsSent in the history
            wait_until(lambda: len(gateway.deliveries) == 1, 60, "the SMS at the gateway")
            assert gateway.deliveries[0][1]["to"] == "+358401234567"
            # the planner sends, then records the request and SmsSent in one write: wait for it
            wait_until(
                lambda: [s["status"] for s in ok("GET", "/v1/calls/c1/sms", headers=agent)] == ["sent"], 30, "SmsSent"
            )
            # the follow-up task, owned by its team
            wait_until(lambda: len(ok("GET", "/v1/calls/c1/follow-ups", headers=agent)) == 1, 30, "the task")
            assert ok("GET", "/v1/calls/c1/follow-ups", headers=agent)[0]["owner_team"] == "care"
            # the webhook, signed, for THANKS only
            wait_until(lambda: len(consumer.deliveries) == 1, 60, "the webhook delivery")
            _, payload, headers = consumer.deliveries[0]
            assert payload["outcome_code"] == "THANKS"
            assert verify([hook["secret"]], headers["X-Outcomes-Timestamp"], consumer.raw[0],
                          headers["X-Outcomes-Signature"])  # fmt: skip
            # the do-not-call, as the dialability query answers it
            wait_until(
                lambda: not ok("GET", "/v1/contacts/k1/dialability?project_id=p", headers=agent)["allowed"],
                60,
                "the do-not-call in effect",
            )
            # the flow's stream has the hand-over
            settings_keys = ShardKeys(stack.env["REDIS_SHARD"], stack.env["REDIS_KEY_PREFIX"])
            stream = settings_keys.flow("acme", "survey")

            def handed_over() -> bool:
                entries = cast(list[tuple[bytes, dict[bytes, bytes]]], redis_client.xrange(stream))
                return [f[b"type"] for _, f in entries] == [b"redirected"]

            wait_until(handed_over, 60, "the hand-over on the flow's stream")
