"""Erasure (PRODUCT.md §5; docs/erasure.md), against real Redis, the real ASGI app and the
real workers: a contact with a distinctive number and name leaves a trail everywhere --
calls, outcomes, a message, an SMS, a webhook delivery, a published contact-list change, an
ingest entry, a rejection, a dead letter, a stored idempotency result -- and after the
erasure neither the number nor the name is anywhere in Redis in clear (every key of every
type read) nor in the archive tier (every cell of every file: the events archived before the
erasure, the manifest, the read-model rows moved there), while the log still verifies and the
number stays refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import msgspec
import pyarrow.parquet as pq
import pytest
import redis
from click.testing import CliRunner
from litestar.testing import TestClient

from events.archive import log_entries
from events.codec import ERASED, DomainEvent, StructMapper, SubjectKeys
from events.keys import IngestKeys, ShardKeys
from events.types import (
    CallStarted,
    ContactErased,
    ContactHandling,
    ContactSaved,
    DoNotCallSpec,
    MessageRecorded,
    OutcomeDefinition,
    ProjectSettings,
    SmsRequested,
    SmsSent,
    SmsSuppressed,
)
from services.api.app import create_app
from services.archive import Archiver
from services.checkpoints import Checkpointer, KeyRing, Signer, generate_key
from services.cli import main as cli
from services.dialing import DialingView
from services.interactions import Contact, aggregate_id, project_contact
from services.ledger import Ledger
from services.permissions import Role
from services.rules import Context
from services.rules import config as config_rules
from services.rules.dialability import dialability
from services.rules.interactions import erase_contact
from services.rules.sms import refused_before_sending
from services.runtime import Runtime
from services.sms import Sms
from services.sms_gateway import FileGateway
from services.suppressions import number_hash
from services.verify import verify
from tests.helpers import T0, new_runtime, selected_call
from tests.receiver import Receiver
from tests.test_rules_more import cli_env
from workers.actions import LogFollower, SmsPlanner, SmsSender
from workers.contact_lists import ContactListPlanner
from workers.flows import FlowPublisher
from workers.ingest import IngestRunner
from workers.projections import ProjectionRunner
from workers.webhooks import WebhookDispatcher, WebhookSender

TENANT = "erase"
NUMBER = "+358457772931"
NAME = "Zelda Quimby-Erasmus"
NEEDLES = (NUMBER.encode(), NUMBER[1:].encode(), NAME.encode(), b"Quimby")


class Grumpy(LogFollower):
    """A worker that cannot handle calls and says why, number and all: its dead letters
    carry personal data, as real exception messages do."""

    name = "test.grumpy"
    wanted = frozenset({b"CallStarted"})

    def decide(self, event: DomainEvent) -> tuple[str | None, list[DomainEvent]]:
        assert isinstance(event, CallStarted)
        raise ValueError(f"cannot dial {event.contact_number}")


class World:
    def __init__(self, runtime: Runtime, http: TestClient[Any], admin: str, tmp: Path) -> None:
        self.runtime = runtime
        self.http = http
        self.admin = {"Authorization": f"Bearer {admin}"}
        _, platform = runtime.registry.issue_key(TENANT, Role.PLATFORM)
        self.platform = {"Authorization": f"Bearer {platform}", "X-Acting-For": "agent:anna"}
        self.keys = ShardKeys(runtime.settings.shard, runtime.settings.key_prefix)
        self.client: redis.Redis = runtime.client
        self.sms_file = tmp / "sms.jsonl"
        self.key_file = tmp / "checkpoint.key"

    @property
    def ledger(self) -> Ledger:
        return self.runtime.ledger(TENANT)

    def follow(self) -> None:
        """Every worker of the trail, until none has anything left."""
        settings = self.runtime.settings
        workers: list[LogFollower] = [
            SmsPlanner(settings),
            SmsSender(settings, FileGateway(self.sms_file)),
            ContactListPlanner(settings),
            WebhookDispatcher(settings, WebhookSender(retries=0)),
            FlowPublisher(settings),
            Grumpy(settings, max_attempts=1),
        ]
        while sum(w.run_once() for w in workers):
            pass

    def ingest(self, entry_type: str, target: str, body: dict[str, Any]) -> None:
        fields = {"type": entry_type, "target": target, "acting_for": "agent:anna", "body": json.dumps(body)}
        self.client.xadd(IngestKeys(TENANT, self.runtime.settings.key_prefix).ingest, fields)  # type: ignore[arg-type]
        runner = IngestRunner(self.runtime.settings, "test")
        try:
            while runner.run_once(block_ms=10):
                pass
        finally:
            runner.close()

    def erase(self, contact_id: str = "erin") -> dict[str, Any]:
        r = self.http.post(f"/v1/contacts/{contact_id}/erase", headers=self.admin)
        assert r.status_code == 200, r.text
        return cast(dict[str, Any], r.json())

    def dialability(self, contact_id: str, **query: str) -> dict[str, Any]:
        r = self.http.get(
            f"/v1/contacts/{contact_id}/dialability", headers=self.platform, params={"project_id": "p", **query}
        )
        assert r.status_code == 200, r.text
        return cast(dict[str, Any], r.json())

    def sms_events(self, call_id: str) -> list[DomainEvent]:
        call = aggregate_id(TENANT, "call", call_id)
        return cast(list[DomainEvent], list(self.ledger.events.get(aggregate_id(TENANT, "sms", f"{call}/3"))))

    def history(self) -> Any:
        r = self.http.get("/v1/reports/history", headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()["rows"]


def seed(runtime: Runtime) -> str:
    _, admin = runtime.create_tenant(TENANT, "Erase")
    ledger = runtime.ledger(TENANT)
    ctx = Context(TENANT, "admin:test", datetime.now(UTC))
    ledger.configure(ctx, "sms-template", "thanks", lambda c: config_rules.save_template(c, ctx, "thanks", "Thanks!"))
    ledger.define_outcome(ctx, OutcomeDefinition(code="THANKS", name="Thanks", sms_template="thanks", auto_send=True))
    dnc = ContactHandling(do_not_call=DoNotCallSpec(numbers="this"))
    ledger.define_outcome(ctx, OutcomeDefinition(code="NO_MORE", name="No more", contact_handling=dnc))
    ledger.create_project(ctx, "p", ProjectSettings(name="P", direction="outbound"))
    survey = OutcomeDefinition(code="TO_SURVEY", name="Survey", redirect_to_flow="survey", applies_to=("conversation",))
    ledger.define_outcome(ctx, survey, project_id="p")
    return admin


@pytest.fixture
def w(redis_url: str, shard: str, tmp_path: Path) -> Iterator[World]:
    runtime = new_runtime(redis_url, shard)
    admin = seed(runtime)
    with TestClient(create_app(runtime)) as http:
        yield World(runtime, http, admin, tmp_path)
    runtime.close()


def leave_a_trail(w: World) -> None:
    """Everything a contact leaves behind, through the ways it really gets there."""
    contact = {"name": NAME, "numbers": [NUMBER], "time_zone": "Europe/Helsinki"}
    r = w.http.put("/v1/contacts/erin", headers={**w.platform, "Idempotency-Key": "save-erin"}, json=contact)
    assert r.status_code in (200, 201), r.text
    # a call reported on the ingest stream, and one refused there (unknown project)
    started = {"call_id": "c-in", "project_id": "p", "direction": "outbound", "occurred_at": T0.isoformat()}
    w.ingest("call.started", "", {**started, "contact_id": "erin", "contact_number": NUMBER})
    w.ingest("call.started", "", {**started, "call_id": "c-bad", "project_id": "nope", "contact_number": NUMBER})
    # calls with outcomes: an SMS sent, a webhook delivered, a do-not-call published for dialers
    two = timedelta(minutes=2)
    for call_id, code in (("c-sms", "THANKS"), ("c-dnc", "NO_MORE")):
        selected_call(w.ledger, TENANT, call_id, code, project_id="p", contact_id="erin", contact_number=NUMBER,
                      ended_after=two, selected_after=two)  # fmt: skip
    # a conversation whose message says the name
    conversation = {"conversation_id": "v-1", "project_id": "p", "channel": "sms", "occurred_at": T0.isoformat()}
    r = w.http.post("/v1/conversations", headers=w.platform, json={**conversation, "contact_id": "erin"})
    assert r.status_code == 201, r.text
    message = {"direction": "received", "channel": "sms", "occurred_at": T0.isoformat(), "body": f"This is {NAME}"}
    r = w.http.post("/v1/conversations/v-1/messages", headers=w.platform, json=message)
    assert r.status_code in (200, 201), r.text
    # handed to a survey bot: the flow's stream gets the customer's next message, name and all
    r = w.http.post("/v1/conversations/v-1/outcome", headers=w.platform, json={"outcome_code": "TO_SURVEY",
                    "occurred_at": T0.isoformat()})  # fmt: skip
    assert r.status_code in (200, 201), r.text
    r = w.http.post("/v1/conversations/v-1/messages", headers=w.platform, json={**message, "body": f"5/5, {NAME}"})
    assert r.status_code in (200, 201), r.text


def needles_in_redis(client: redis.Redis) -> dict[str, set[bytes]]:
    """Every key in Redis (all tests' prefixes), every value of every type read whole; msgpack
    values decoded as well as searched raw. Key name -> the needles found in it."""
    found: dict[str, set[bytes]] = {}
    for name in client.scan_iter(count=1000):
        blobs = [name, *_values(client, name)]
        hits = {n for n in NEEDLES for blob in blobs if n in blob}
        for blob in blobs:
            hits |= {n for n in NEEDLES if n in _msgpack_text(blob)}
        if hits:
            found[cast(bytes, name).decode(errors="replace")] = hits
    return found


def _values(client: redis.Redis, name: bytes) -> list[bytes]:
    kind = cast(bytes, client.type(name)).decode()
    if kind == "none":  # expired since the SCAN saw it (a rate-limit counter)
        return []
    if kind == "string":
        return [cast(bytes, client.get(name) or b"")]
    if kind == "hash":
        return [b for pair in cast(dict[bytes, bytes], client.hgetall(name)).items() for b in pair]
    if kind == "list":
        return cast(list[bytes], client.lrange(name, 0, -1))
    if kind == "set":
        return list(cast(set[bytes], client.smembers(name)))
    if kind == "zset":
        return [member for member, _ in cast(list[tuple[bytes, float]], client.zrange(name, 0, -1, withscores=True))]
    if kind == "stream":
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(name))
        return [b for eid, fields in entries for b in (eid, *(x for pair in fields.items() for x in pair))]
    raise AssertionError(f"a key of a type the scan does not read: {name!r} ({kind})")


def _msgpack_text(blob: bytes) -> bytes:
    """A msgpack value's content as text (nested msgpack in bytes decoded too); b"" if not msgpack."""
    try:
        value = msgspec.msgpack.decode(blob)
    except (msgspec.DecodeError, ValueError, TypeError):
        return b""

    def flat(v: Any) -> Iterator[bytes]:
        if isinstance(v, bytes):
            yield v
            yield _msgpack_text(v)
        elif isinstance(v, str):
            yield v.encode()
        elif isinstance(v, list | tuple):
            for x in v:
                yield from flat(x)
        elif isinstance(v, dict):
            for k, x in v.items():
                yield from flat(k)
                yield from flat(x)

    return b"\n".join(flat(value))


def replay(w: World) -> list[DomainEvent]:
    """The tenant's whole log decoded from position 0 by a reader that shares no cache."""
    mapper = StructMapper(keys=SubjectKeys(w.client, w.runtime.settings.key_prefix))
    entries = log_entries(w.client, w.keys)  # archive then Redis
    return [mapper.decode(f[b"t"].decode(), f[b"s"]) for _, f in entries if f[b"n"] == TENANT.encode()]


def needles_in_archive(root: Path) -> dict[str, set[bytes]]:
    """Every file under the archive directory, Parquet files cell by cell (msgpack values
    decoded as well), the others whole. File -> the needles found in it."""
    found: dict[str, set[bytes]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        blobs = [str(path.relative_to(root)).encode()]
        if path.suffix == ".parquet":
            cells = (v for column in pq.read_table(path).columns for v in column.to_pylist() if v is not None)
            blobs += [v if isinstance(v, bytes) else str(v).encode() for v in cells]
        else:
            blobs.append(path.read_bytes())
        hits = {n for n in NEEDLES for blob in blobs if n in blob or n in _msgpack_text(blob)}
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def test_an_erased_contact_is_nowhere_in_redis_yet_the_log_verifies_and_the_number_stays_refused(
    w: World, tmp_path: Path
) -> None:
    leave_a_trail(w)
    w.follow()
    assert [type(e) for e in w.sms_events("c-sms")] == [SmsRequested, SmsSent]
    with Receiver() as hook:  # a webhook receives the tenant's outcomes, erin's among them
        r = w.http.post("/v1/webhooks", headers=w.admin, json={"webhook_id": "crm", "url": hook.url})
        assert r.status_code == 201, r.text
        selected_call(w.ledger, TENANT, "c-hook", "THANKS", project_id="p", contact_id="erin", contact_number=NUMBER)
        w.follow()
        assert len(hook.deliveries) == 1
    ProjectionRunner(w.runtime.settings).settle(int(cast(bytes, w.client.hget(w.keys.head, "n"))))
    history_before = w.history()
    generate_key(w.key_file)
    Checkpointer(w.client, w.keys, Signer.from_file(w.key_file)).run_once(force=True)
    # everything signed so far moves to the archive tier, the calls' read-model rows with it
    archive = tmp_path / "archive"
    run = Archiver(w.client, w.keys, str(archive), segment_size=50).run(before_position=1 << 40)
    assert run.through > 0 and run.rows_retired > 0, run
    archived = [e for e in replay(w) if isinstance(e, CallStarted) and e.contact_id == "erin"]
    assert {e.contact_number for e in archived} == {NUMBER}  # the control: read back from the archive

    # the control: before the erasure the trail is in clear in every store outside the log
    before = needles_in_redis(w.client)
    prefix = w.runtime.settings.key_prefix
    for store in ("{in:erase}:ingest", ":dead-letters", ":pub:contact-lists:erase"):
        assert any(store in name and NUMBER.encode() in hits for name, hits in before.items()), (store, before)
    assert any(":flow:erase:survey" in name and NAME.encode() in hits for name, hits in before.items()), before
    rejections = IngestKeys(TENANT, prefix).rejections
    assert w.client.xlen(rejections) == 1  # "project 'nope' not found", keyed to the entry that had the number
    assert w.client.exists(w.keys.idempotency(TENANT, "save-erin"))

    done = w.erase()
    assert done["recorded"] is True and done["suppressed_numbers"] == 1 and done["keys_destroyed"] >= 1, done
    assert done["purged"]["ingest"] == 2 and done["purged"]["rejections"] == 1, done
    assert done["purged"]["dead_letters"] >= 1 and done["purged"]["contact_list_changes"] >= 1, done
    assert done["purged"]["idempotency_results"] >= 1 and done["purged"]["flow_entries"] >= 1, done

    # nowhere in Redis in clear: every key of every type (ciphertext in the log is fine)
    left = {name: hits for name, hits in needles_in_redis(w.client).items() if name.startswith(prefix)}
    assert left == {}, left
    assert not w.client.exists(w.keys.idempotency(TENANT, "save-erin"))
    # nor in the archive: its events carry the personal fields sealed under the destroyed key
    assert needles_in_archive(archive) == {}

    # the log is not rewritten: verify passes against the checkpoint signed before the erasure
    report = verify(w.client, [w.keys], KeyRing.from_files([f"{w.key_file}.pub"]))
    assert report.ok, report
    assert report.shards[0].signed_through > 0

    # replays, reports and the API show it as erased; what is not personal stands
    events = replay(w)
    saved = [e for e in events if isinstance(e, ContactSaved)]
    assert [(e.name, e.numbers) for e in saved] == [(ERASED, (ERASED,))]
    assert {e.contact_number for e in events if isinstance(e, CallStarted) and e.contact_id == "erin"} == {ERASED}
    assert [e.body for e in events if isinstance(e, MessageRecorded)] == [ERASED, ERASED]
    assert [e.suppressed for e in events if isinstance(e, ContactErased)] == [(done_hash(w),)]
    runner = ProjectionRunner(w.runtime.settings)
    for view in runner.views:  # a replay of every read model from position 0
        view.drop()
        view.catch_up()
    assert w.history() == history_before
    contact = w.http.get("/v1/contacts/erin", headers=w.platform).json()
    assert (contact["name"], contact["numbers"], contact["erased"]) == (None, [], True)
    assert w.http.get("/v1/calls/c-sms", headers=w.platform).json()["contact_number"] == ERASED

    # the number is refused: for erin, and for a new contact who has it
    assert w.dialability("erin") == {"allowed": False, "reason": "erased", "until": None}
    assert w.dialability("erin", number=NUMBER)["reason"] == "erased"
    r = w.http.put("/v1/contacts/frank", headers=w.platform, json={"name": "Frank", "numbers": [NUMBER]})
    assert r.status_code in (200, 201), r.text
    assert w.dialability("frank")["reason"] == "erased"
    assert w.dialability("frank", number="+358401111111")["allowed"] is True
    sent = w.sms_file.read_text().count(NUMBER)
    selected_call(w.ledger, TENANT, "c-frank", "THANKS", project_id="p", contact_id="frank", contact_number=NUMBER)
    w.follow()
    events = w.sms_events("c-frank")
    assert [type(e) for e in events] == [SmsRequested, SmsSuppressed]
    assert cast(SmsSuppressed, events[1]).reason == "erased"
    assert w.sms_file.read_text().count(NUMBER) == sent  # the gateway was not asked


def done_hash(w: World) -> str:
    hashes = w.ledger.suppressions.hashes(TENANT, [NUMBER])
    assert len(hashes) == 1
    return hashes[0]


def test_erasing_twice_records_one_event_and_purges_what_came_since(w: World) -> None:
    r = w.http.put("/v1/contacts/erin", headers=w.platform, json={"name": NAME, "numbers": [NUMBER]})
    assert r.status_code in (200, 201), r.text
    first = w.erase()
    started = {"call_id": "c-late", "project_id": "nope", "direction": "outbound", "occurred_at": T0.isoformat()}
    w.ingest("call.started", "", {**started, "contact_id": "erin"})  # refused, after the erasure
    again = w.erase()
    assert (first["recorded"], again["recorded"]) == (True, False)
    assert again["purged"]["ingest"] == 1 and again["purged"]["rejections"] == 1, again
    contact_events: list[object] = list(w.ledger.events.get(aggregate_id(TENANT, "contact", "erin")))
    assert [type(e) for e in contact_events] == [ContactSaved, ContactErased]
    out = CliRunner().invoke(cli, ["contact", "erase", TENANT, "erin"], env=cli_env(w.runtime))
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["recorded"] is False  # the CLI: the same, once
    out = CliRunner().invoke(cli, ["contact", "erase", TENANT, "nobody"], env=cli_env(w.runtime))
    assert out.exit_code == 1 and "contact 'nobody' not found" in out.output


def test_only_the_admin_erases_and_an_unknown_contact_is_not_found(w: World) -> None:
    r = w.http.put("/v1/contacts/erin", headers=w.platform, json={"name": NAME, "numbers": [NUMBER]})
    assert r.status_code in (200, 201), r.text
    for role in (Role.PLATFORM, Role.SUPERVISOR, Role.AUDITOR, Role.MANAGER):
        _, secret = w.runtime.registry.issue_key(TENANT, role)
        r = w.http.post("/v1/contacts/erin/erase", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 403 and "may not erase" in r.json()["message"], (role, r.text)
    r = w.http.post("/v1/contacts/nobody/erase", headers=w.admin)
    assert (r.status_code, r.json()["message"]) == (404, "contact 'nobody' not found")
    assert w.dialability("erin", number=NUMBER)["allowed"] is True


# -- the pure parts ----------------------------------------------------------------------------------

CTX = Context(TENANT, "admin:test", T0)


def test_erasure_is_recorded_once_and_forgets_name_and_numbers() -> None:
    saved = rules_contact()
    (erased,) = erase_contact(saved, CTX, contact_id="erin", suppressed=("ab12",))
    assert isinstance(erased, ContactErased) and erased.originator_version == 2 and erased.suppressed == ("ab12",)
    after = project_contact(saved, [erased])
    assert after is not None and (after.name, after.numbers, after.erased) == (None, (), True)
    assert erase_contact(after, CTX, contact_id="erin", suppressed=()) == []
    (never_saved,) = erase_contact(None, CTX, contact_id="ghost", suppressed=())
    assert never_saved.originator_version == 1


def test_an_erased_contact_or_number_is_refused_before_every_other_reason() -> None:
    project = ProjectSettings(name="P", direction="outbound")
    assert dialability(DialingView(erased=True), "p", project, NUMBER, T0).reason == "erased"
    assert dialability(DialingView(), "p", project, NUMBER, T0).allowed


def test_the_sender_refuses_an_erased_number_first_and_an_opt_out_next() -> None:
    request = SmsRequested(
        originator_id=aggregate_id(TENANT, "sms", "x"), originator_version=1, recorded_at=T0, tenant_id=TENANT,
        actor="system", source="x/1", interaction="call", interaction_id="c", project_id="p", outcome_code="T",
        template_id="t", to_number=NUMBER, body="Hi", contact_id="erin",
    )  # fmt: skip
    sms = Sms(id=request.originator_id, version=1, tenant_id=TENANT, request=request, status="pending", body="Hi")
    opted = msgspec.structs.replace(rules_contact(), opted_out=("sms",))
    assert [e.reason for e in refused_before_sending(sms, opted, CTX, erased=True)] == ["erased"]  # type: ignore[attr-defined]
    assert [e.reason for e in refused_before_sending(sms, opted, CTX, erased=False)] == ["opted_out"]  # type: ignore[attr-defined]
    assert refused_before_sending(sms, None, CTX, erased=False) == []


def test_a_number_hash_is_keyed() -> None:
    assert number_hash(b"k1", NUMBER) != number_hash(b"k2", NUMBER)
    assert number_hash(b"k1", NUMBER) == number_hash(b"k1", NUMBER) and NUMBER[1:] not in number_hash(b"k1", NUMBER)


def rules_saved() -> ContactSaved:
    return ContactSaved(
        originator_id=aggregate_id(TENANT, "contact", "erin"), originator_version=1, recorded_at=T0,
        tenant_id=TENANT, actor="agent:anna", contact_id="erin", name=NAME, numbers=(NUMBER,),
    )  # fmt: skip


def rules_contact() -> Contact:
    contact = project_contact(None, [rules_saved()])
    assert contact is not None
    return contact


def test_a_field_sealed_under_a_destroyed_key_reads_erased_even_once_the_id_has_a_new_key(
    redis_client: redis.Redis, shard: str
) -> None:
    keys = SubjectKeys(redis_client, "ol" + shard)
    mapper = StructMapper(keys=keys)
    stored = mapper.to_stored_event(rules_saved())
    keys.destroy(TENANT, "contact:erin")
    assert keys.key_for(TENANT, "contact:erin", create=True) is not None  # new data, a new key
    decoded = mapper.to_domain_event(stored)
    assert (decoded.name, decoded.numbers) == (ERASED, (ERASED,))
