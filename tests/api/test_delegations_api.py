"""Delegations through the API on SQLite, PostgreSQL and MySQL: the token's user delegates,
lists and revokes; an admin may act for someone; a delegate sees and votes on the
delegator's requests until the delegation is revoked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_support import ADMIN, assert_error, auth, seed, snapshot

from kaizen import service
from kaizen.service import Kaizen

LATER = "2099-01-31T18:00:00Z"


async def delegations(client: httpx.AsyncClient, user: str, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/delegations{query}", headers=auth(user))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def pairs(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["approver_id"], d["delegate_id"]) for d in items]


async def test_delegate_list_replace_and_revoke(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    response = await client.post(
        "/api/delegations", json={"to": "outsider"}, headers=auth("lead-456")
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["created_at"].endswith("+00:00")
    assert {k: v for k, v in made.items() if k != "created_at"} == {
        "approver_id": "lead-456",
        "delegate_id": "outsider",
        "until": None,
        "created_by": "lead-456",
    }
    mine = await delegations(client, "lead-456")
    assert mine["user"] == "lead-456"
    assert (pairs(mine["outgoing"]), mine["incoming"]) == ([("lead-456", "outsider")], [])
    theirs = await delegations(client, "outsider")
    assert (theirs["outgoing"], pairs(theirs["incoming"])) == ([], [("lead-456", "outsider")])
    # Delegating again to the same person replaces the delegation (now with an end).
    response = await client.post(
        "/api/delegations", json={"to": "outsider", "until": LATER}, headers=auth("lead-456")
    )
    assert response.status_code == 201 and response.json()["until"] == "2099-01-31T18:00:00+00:00"
    [stored] = (await delegations(client, "lead-456"))["outgoing"]
    assert stored["until"] == "2099-01-31T18:00:00+00:00"
    stored = await service.list_delegations(kaizen, approver="lead-456")
    assert pairs(stored) == [("lead-456", "outsider")]
    # An offset other than UTC is the same instant.
    response = await client.post(
        "/api/delegations",
        json={"to": "admin-1", "until": "2099-01-31T20:00:00+02:00"},
        headers=auth("lead-456"),
    )
    assert response.json()["until"] == "2099-01-31T18:00:00+00:00"
    revoked = await client.delete("/api/delegations/outsider", headers=auth("lead-456"))
    assert revoked.status_code == 204 and revoked.content == b""
    assert pairs((await delegations(client, "lead-456"))["outgoing"]) == [("lead-456", "admin-1")]
    again = await client.delete("/api/delegations/outsider", headers=auth("lead-456"))
    assert_error(again, 404, "not_found")
    assert (await delegations(client, "outsider"))["incoming"] == []


async def test_delegates_with_slashes_in_their_id(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/delegations", json={"to": "team/ops lead"}, headers=auth("lead-456")
    )
    assert response.status_code == 201, response.text
    response = await client.delete("/api/delegations/team%2Fops%20lead", headers=auth("lead-456"))
    assert response.status_code == 204, response.text
    assert (await delegations(client, "lead-456"))["outgoing"] == []


async def test_only_an_admin_acts_for_someone_else(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    user = auth("lead-456")
    body = {"to": "outsider", "approver": "admin-1"}
    assert_error(
        await client.post("/api/delegations", json=body, headers=user), 403, "admin_required"
    )
    assert_error(await client.get("/api/delegations?approver=admin-1", headers=user), 403)
    await service.delegate(kaizen, "admin-1", "outsider")
    response = await client.delete("/api/delegations/outsider?approver=admin-1", headers=user)
    assert_error(response, 403, "admin_required")
    assert pairs(await service.list_delegations(kaizen, approver="admin-1")) == [
        ("admin-1", "outsider")
    ]
    # Naming oneself is allowed to anyone.
    response = await client.post(
        "/api/delegations", json={"to": "outsider", "approver": "lead-456"}, headers=user
    )
    assert response.status_code == 201, response.text
    assert (await delegations(client, "lead-456", "?approver=lead-456"))["user"] == "lead-456"
    # An admin token manages anyone's, and is recorded as who did.
    response = await client.post(
        "/api/delegations", json={"to": "user-123", "approver": "admin-1"}, headers=auth(ADMIN)
    )
    assert response.status_code == 201, response.text
    assert (response.json()["approver_id"], response.json()["created_by"]) == ("admin-1", ADMIN)
    listed = await delegations(client, ADMIN, "?approver=admin-1")
    assert listed["user"] == "admin-1"
    assert sorted(pairs(listed["outgoing"])) == [("admin-1", "outsider"), ("admin-1", "user-123")]
    response = await client.delete(
        "/api/delegations/outsider?approver=admin-1", headers=auth(ADMIN)
    )
    assert response.status_code == 204
    assert pairs(await service.list_delegations(kaizen, approver="admin-1")) == [
        ("admin-1", "user-123")
    ]
    assert (await delegations(client, ADMIN))["outgoing"] == []  # the admin's own: none


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{}",
        b'{"to": null}',
        b'{"to": 5}',
        b'{"to": ""}',
        b'{"to": " outsider"}',
        b'{"to": "lead-456"}',
        b'{"to": "outsider", "until": "tomorrow"}',
        b'{"to": "outsider", "until": "2099-01-31T18:00:00"}',
        b'{"to": "outsider", "until": "2001-01-01T00:00:00Z"}',
        b'{"to": "outsider", "until": 4102444800}',
        b'{"to": "outsider", "delegate": "x"}',
        b'{"to": "outsider", "approver": 5}',
        b'["outsider"]',
        b"not json",
    ],
)
async def test_422_for_bad_delegations_stores_nothing(
    client: httpx.AsyncClient, kaizen: Kaizen, content: bytes
) -> None:
    response = await client.post(
        "/api/delegations",
        content=content,
        headers={**auth("lead-456"), "Content-Type": "application/json"},
    )
    assert_error(response, 422, "invalid_request")
    assert await service.list_delegations(kaizen) == []


async def test_422_for_bad_delegation_queries(client: httpx.AsyncClient) -> None:
    user = auth("lead-456")
    assert_error(await client.get("/api/delegations?to=x", headers=user), 422)
    assert_error(await client.get("/api/delegations?approver=", headers=user), 422)
    assert_error(await client.delete("/api/delegations/x?user=y", headers=user), 422)
    assert_error(await client.get("/api/delegations/x", headers=user), 405)


async def test_a_delegate_sees_and_votes_for_the_delegator(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    request_id = await seed(kaizen, quorum=2, approvers=["lead-456", "admin-1"])
    stand_in = auth("outsider")
    assert_error(await client.get(f"/api/approvals/{request_id}", headers=stand_in), 404)
    response = await client.post(
        "/api/delegations", json={"to": "outsider", "until": LATER}, headers=auth("lead-456")
    )
    assert response.status_code == 201
    seen = await client.get(f"/api/approvals/{request_id}", headers=stand_in)
    assert seen.status_code == 200, seen.text
    listed = (await client.get("/api/approvals?status=pending", headers=stand_in)).json()
    assert [a["id"] for a in listed["items"]] == [request_id]
    # The inbox's list: what the user may vote on (routed to them or whom they stand in for).
    other = await seed(kaizen, approvers=["admin-1"])
    for user, expected in (("outsider", [request_id]), ("admin-1", [other, request_id])):
        page = await client.get(f"/api/approvals?status=pending&voter={user}", headers=auth(user))
        assert [a["id"] for a in page.json()["items"]] == expected
    both = await client.get("/api/approvals?voter=outsider&approver=x", headers=stand_in)
    assert_error(both, 422)
    # No delegation from admin-1: voting for them is refused (the request is visible: 403).
    response = await client.post(
        f"/api/approvals/{request_id}/approve", json={"on_behalf_of": "admin-1"}, headers=stand_in
    )
    assert_error(response, 403, "not_an_approver")
    response = await client.post(
        f"/api/approvals/{request_id}/approve", json={"comment": "for lead"}, headers=stand_in
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["status"] == "pending" and data["progress"]["text"] == "1 of 2"
    [cast] = data["votes"]
    assert (cast["approver_id"], cast["on_behalf_of"], cast["comment"]) == (
        "outsider",
        "lead-456",
        "for lead",
    )
    assert data["eligible"] == ["admin-1"]
    # The delegator's vote is in: theirs is refused.
    response = await client.post(f"/api/approvals/{request_id}/approve", headers=auth("lead-456"))
    assert_error(response, 409, "already_voted")


async def test_a_revoked_delegate_cannot_see_or_vote(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    await service.delegate(kaizen, "lead-456", "outsider")
    request_id = await seed(kaizen, approvers=["lead-456"])
    stand_in = auth("outsider")
    assert (await client.get(f"/api/approvals/{request_id}", headers=stand_in)).status_code == 200
    revoked = await client.delete("/api/delegations/outsider", headers=auth("lead-456"))
    assert revoked.status_code == 204
    before = await snapshot(kaizen, request_id)
    assert_error(await client.get(f"/api/approvals/{request_id}", headers=stand_in), 404)
    response = await client.post(f"/api/approvals/{request_id}/approve", headers=stand_in)
    assert_error(response, 404, "not_found")
    response = await client.post(
        f"/api/approvals/{request_id}/reject", json={"reason": "no"}, headers=stand_in
    )
    assert_error(response, 404, "not_found")
    listed = (await client.get("/api/approvals", headers=stand_in)).json()
    assert listed["items"] == []
    assert await snapshot(kaizen, request_id) == before


async def test_a_delegate_can_veto_for_the_delegator(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    await service.delegate(kaizen, "admin-1", "outsider")
    request_id = await seed(kaizen, quorum=2)
    response = await client.post(
        f"/api/approvals/{request_id}/reject",
        json={"reason": "admin-1 would say no", "on_behalf_of": "admin-1"},
        headers=auth("outsider"),
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["status"], data["approved_by"]) == ("rejected", "outsider")
    assert data["votes"][0]["on_behalf_of"] == "admin-1"
