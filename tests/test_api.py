"""API behaviour beyond the slice: contacts, quotas, the outcome-set picker, key revocation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from services.api.app import create_app
from services.runtime import Runtime
from tests.helpers import new_runtime


@pytest.fixture()
def client(redis_url: str, shard: str) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str], Runtime]]:
    runtime = new_runtime(redis_url, shard)
    _, admin = runtime.create_tenant("acme", "Acme")
    with TestClient(create_app(runtime)) as c:
        a = {"Authorization": f"Bearer {admin}"}
        platform = c.post("/v1/keys", headers=a, json={"role": "platform"}).json()["secret"]
        yield c, a, {"Authorization": f"Bearer {platform}"}, runtime
    runtime.close()


def test_contacts_are_saved_with_sealed_personal_data(
    client: tuple[TestClient, dict[str, str], dict[str, str], Runtime],
) -> None:
    c, _, p, runtime = client
    r = c.put(
        "/v1/contacts/k1",
        headers=p,
        json={
            "name": "Ann Example",
            "numbers": ["+358401234567"],
            "time_zone": "Europe/Helsinki",
            "company_id": "acme-oy",
        },
    )
    assert r.status_code == 200, r.text
    got = c.get("/v1/contacts/k1", headers=p).json()
    assert got["numbers"] == ["+358401234567"] and got["time_zone"] == "Europe/Helsinki"
    log = runtime.shard_keys("acme").log
    assert all(b"401234567" not in f[b"s"] for _, f in runtime.client.xrange(log))
    bad = c.put("/v1/contacts/k2", headers=p, json={"time_zone": "Mars/Olympus"})
    assert bad.status_code == 422 and "Mars/Olympus" in bad.json()["message"]
    assert c.get("/v1/contacts/k2", headers=p).status_code == 404
    assert c.post("/v1/contacts/k1/opt-out", headers=p, json={"occurred_at": "2026-11-22T10:00:00Z"}).status_code == 201
    assert c.get("/v1/contacts/k1", headers=p).json()["opted_out"] == ["sms"]


def test_the_outcome_set_is_what_the_picker_needs(
    client: tuple[TestClient, dict[str, str], dict[str, str], Runtime],
) -> None:
    c, a, p, _ = client
    assert (
        c.post("/v1/outcomes", headers=a, json={"code": "SALE", "name": "Sale", "shortcut_key": "s"}).status_code == 201
    )
    assert (
        c.post(
            "/v1/projects",
            headers=a,
            json={"project_id": "p1", "name": "P", "direction": "outbound", "quotas": {"SALE": 5}},
        ).status_code
        == 201
    )
    picker = c.get("/v1/projects/p1/outcome-set", headers=p).json()
    codes = {o["definition"]["code"]: o for o in picker["outcomes"]}
    assert picker["prompt"] is True and isinstance(picker["version"], int)
    assert codes["SALE"]["definition"]["shortcut_key"] == "s" and codes["NO_ANSWER"]["definition"]["unanswered"]
    quotas = c.get("/v1/projects/p1/quotas", headers=a).json()
    assert quotas == [{"outcome_code": "SALE", "quota": 5, "selections": 0, "reached_at": None}]
    assert c.get("/v1/projects/nope/quotas", headers=a).status_code == 404


def test_a_revoked_key_is_refused(client: tuple[TestClient, dict[str, str], dict[str, str], Runtime]) -> None:
    c, a, _, _ = client
    issued = c.post("/v1/keys", headers=a, json={"role": "manager"}).json()
    m = {"Authorization": f"Bearer {issued['secret']}"}
    assert c.get("/v1/outcomes", headers=m).status_code == 200
    assert c.delete(f"/v1/keys/{issued['key_id']}", headers=a).status_code == 200
    refused = c.get("/v1/outcomes", headers=m)
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    assert c.delete(f"/v1/keys/{uuid.uuid4().hex[:12]}", headers=a).status_code == 404
