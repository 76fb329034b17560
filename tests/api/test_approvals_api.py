"""The approvals API on SQLite, PostgreSQL and MySQL: every status code, and no change on errors."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from api_support import ADMIN, assert_error, auth, seed, snapshot, status_of

from kaizen import service
from kaizen.service import Kaizen

ENDPOINTS = [
    ("GET", "/api/approvals/{id}", None),
    ("POST", "/api/approvals/{id}/approve", {}),
    ("POST", "/api/approvals/{id}/reject", {"reason": "no"}),
    ("GET", "/api/approvals/{id}/audit", None),
    ("GET", "/api/approvals", None),
    ("GET", "/api/sessions", None),
    ("GET", "/api/me", None),
    ("GET", "/api/delegations", None),
    ("POST", "/api/delegations", {"to": "outsider"}),
    ("DELETE", "/api/delegations/outsider", None),
]


# -- 401 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dG9rLWxlYWQtN2YzYTljOg=="},
        {"Authorization": "tok-lead-7f3a9c"},
    ],
    ids=["missing", "empty", "unknown", "basic", "no-scheme"],
)
async def test_401_without_a_valid_token_changes_nothing(
    client: httpx.AsyncClient, kaizen: Kaizen, headers: dict[str, str]
) -> None:
    request_id = await seed(kaizen)
    before = await snapshot(kaizen, request_id)
    for method, path, body in ENDPOINTS:
        response = await client.request(
            method, path.format(id=request_id), json=body, headers=headers
        )
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert await snapshot(kaizen, request_id) == before


async def test_401_comes_before_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/api/approvals/nope/approve"), 401)


# -- reading -------------------------------------------------------------------


async def test_me_names_the_token_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me", headers=auth("admin-1"))
    assert response.status_code == 200
    assert response.json() == {"user": "admin-1", "role": "user"}
    response = await client.get("/api/me", headers=auth(ADMIN))
    assert response.json() == {"user": ADMIN, "role": "admin"}


async def test_get_one_request(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen, metadata={"cost": 15.0, "environment": "production"})
    response = await client.get(f"/api/approvals/{request_id}", headers=auth("lead-456"))
    assert response.status_code == 200
    data = response.json()
    assert data["id"] == request_id
    assert data["status"] == "pending"
    assert data["approvers"] == ["lead-456", "admin-1"]
    assert data["request_metadata"] == {"cost": 15.0, "environment": "production"}
    assert data["created_at"].endswith("+00:00") and data["deadline_at"]
    root = f"https://kaizen.example.com/api/approvals/{request_id}"
    assert data["links"]["approve"] == f"{root}/approve"
    assert data["links"]["reject"] == f"{root}/reject"
    page = f"https://kaizen.example.com/approvals/{request_id}"
    assert data["links"]["page"] == page
    assert data["links"]["approve_page"] == f"{page}?action=approve"


async def test_list_filters_and_pages(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    a = await seed(kaizen, agent="agent-a", approvers=["lead-456"])
    b = await seed(kaizen, agent="agent-b", approvers=["admin-1"])
    c = await seed(kaizen, agent="agent-a", approvers=["admin-1", "lead-456"])
    await service.approve(kaizen, c, "admin-1")

    async def ids(query: str) -> set[str]:
        response = await client.get(f"/api/approvals?{query}", headers=auth(ADMIN))
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert await ids("status=pending") == {a, b}
    assert await ids("status=approved") == {c}
    assert await ids("status=pending&approver=admin-1") == {b}
    assert await ids("approver=lead-456") == {a, c}
    assert await ids("status=pending&agent=agent-a") == {a}
    assert await ids("agent=agent-a") == {a, c}
    assert await ids("agent=agent-a&status=approved") == {c}
    assert await ids("decided_by=admin-1") == {c}
    assert await ids("decided_by=lead-456") == set()
    assert await ids("requested_by=user-123") == {a, b, c}
    assert await ids("requested_by=someone-else") == set()
    first = await ids("status=pending&limit=1")
    second = await ids("status=pending&limit=1&offset=1")
    assert len(first) == len(second) == 1 and first | second == {a, b}
    response = await client.get("/api/approvals?limit=2&offset=3", headers=auth(ADMIN))
    assert response.json()["limit"] == 2 and response.json()["offset"] == 3
    assert response.json()["items"] == [] and response.json()["next_offset"] is None
    pages = [(await client.get(f"/api/approvals?limit=2&offset={o}", headers=auth(ADMIN))).json()
             for o in (0, 2)]  # fmt: skip
    assert [p["next_offset"] for p in pages] == [2, None]
    assert {i["id"] for p in pages for i in p["items"]} == {a, b, c}


@pytest.mark.parametrize(
    "query",
    [
        "status=maybe",
        "limit=0",
        "limit=501",
        "limit=ten",
        "limit=-1",
        "offset=-1",
        "approver=",
        "agent=%20",
        "stauts=pending",
        "status=pending&status=approved",
        "decided_by=",
        "requested_by=%20",
    ],
)
async def test_422_for_bad_list_params(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/api/approvals?{query}", headers=auth("lead-456"))
    assert_error(response, 422, "invalid_request")


async def test_404_for_unknown_ids(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    other = await seed(kaizen)
    before = await snapshot(kaizen, other)
    user = auth("lead-456")
    assert_error(await client.get("/api/approvals/req-missing", headers=user), 404, "not_found")
    assert_error(await client.get("/api/approvals/req-missing/audit", headers=user), 404)
    assert_error(await client.post("/api/approvals/req-missing/approve", headers=user), 404)
    response = await client.post(
        "/api/approvals/req-missing/reject", json={"reason": "no"}, headers=user
    )
    assert_error(response, 404)
    assert await snapshot(kaizen, other) == before
    assert (await service.list_approvals(kaizen, status="approved"))["items"] == []


@pytest.mark.parametrize("action", ["audit", "approve", "reject"])
async def test_ids_that_end_like_an_action(
    client: httpx.AsyncClient, kaizen: Kaizen, action: str
) -> None:
    request_id = await seed(kaizen, request_id=f"ops/{action}")
    quoted = f"ops%2F{action}"
    one = await client.get(f"/api/approvals/{quoted}", headers=auth("lead-456"))
    assert one.status_code == 200 and one.json()["id"] == request_id
    assert one.json()["links"]["self"].endswith(f"/api/approvals/{quoted}")
    trail = await client.get(f"/api/approvals/{quoted}/audit", headers=auth("lead-456"))
    assert trail.status_code == 200 and trail.json()["request_id"] == request_id
    missing = await client.get("/api/approvals/nope%2Faudit", headers=auth("lead-456"))
    assert_error(missing, 404, "not_found")
    assert "nope/audit" in missing.json()["error"]["message"]


async def test_ids_with_slashes_and_spaces(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen, request_id="team/a b/42")
    response = await client.get("/api/approvals/team%2Fa%20b%2F42", headers=auth("lead-456"))
    assert response.status_code == 200
    assert response.json()["links"]["approve"].endswith("/team%2Fa%20b%2F42/approve")
    response = await client.post(
        "/api/approvals/team%2Fa%20b%2F42/approve", headers=auth("lead-456")
    )
    assert response.status_code == 200, response.text
    assert status_of(await service.get_approval(kaizen, request_id)) == "approved"
    audit = await client.get("/api/approvals/team%2Fa%20b%2F42/audit", headers=auth("lead-456"))
    assert [e["event"] for e in audit.json()["events"]] == ["requested", "approved"]


# -- deciding ------------------------------------------------------------------


async def test_approve_records_the_token_user(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen)
    response = await client.post(f"/api/approvals/{request_id}/approve", headers=auth("admin-1"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    assert response.json()["approved_by"] == "admin-1"
    stored = await service.get_approval(kaizen, request_id)
    assert status_of(stored) == "approved" and stored["approved_by"] == "admin-1"
    events = (
        await client.get(f"/api/approvals/{request_id}/audit", headers=auth("admin-1"))
    ).json()
    assert events["request_id"] == request_id
    assert [(e["event"], e["actor"]) for e in events["events"]] == [
        ("requested", "user-123"),
        ("approved", "admin-1"),
    ]


async def test_reject_records_user_and_reason(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen)
    response = await client.post(
        f"/api/approvals/{request_id}/reject",
        json={"reason": "too risky — not on a Friday"},
        headers=auth("lead-456"),
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["status"], data["approved_by"]) == ("rejected", "lead-456")
    assert data["rejection_reason"] == "too risky — not on a Friday"
    stored = await service.get_approval(kaizen, request_id)
    assert status_of(stored) == "rejected"
    assert stored["rejection_reason"] == "too risky — not on a Friday"
    last = (await service.approval_audit(kaizen, request_id))[-1]
    assert (last["event"], last["actor"]) == ("rejected", "lead-456")


async def test_403_for_a_user_who_sees_the_request_but_may_not_decide(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    # The requester is among the approvers: separation of duties still refuses.
    request_id = await seed(kaizen, approvers=["lead-456", "user-123"])
    before = await snapshot(kaizen, request_id)
    user = auth("user-123")
    response = await client.post(f"/api/approvals/{request_id}/approve", headers=user)
    assert_error(response, 403, "own_request")
    response = await client.post(
        f"/api/approvals/{request_id}/reject", json={"reason": "no"}, headers=user
    )
    assert_error(response, 403, "own_request")
    # An admin reads everything but decides only where they are an approver.
    response = await client.post(f"/api/approvals/{request_id}/approve", headers=auth(ADMIN))
    assert_error(response, 403, "not_an_approver")
    assert await snapshot(kaizen, request_id) == before


async def test_approvers_and_requesters_see_theirs_and_admins_all(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    mine = await seed(kaizen, requested_by="user-123", approvers=["lead-456"])
    routed = await seed(kaizen, requested_by="someone", approvers=["admin-1", "lead-456"])
    other = await seed(kaizen, requested_by="someone", approvers=["admin-1"])

    async def listed(user: str, query: str = "") -> list[str]:
        response = await client.get(f"/api/approvals{query}", headers=auth(user))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await listed("user-123") == [mine]
    assert await listed("lead-456") == [routed, mine]
    assert await listed("admin-1") == [other, routed]
    assert await listed(ADMIN) == [other, routed, mine]
    assert await listed("lead-456", "?approver=admin-1") == [routed]
    assert await listed("lead-456", "?requested_by=user-123") == [mine]
    assert await listed("user-123", "?approver=lead-456") == [mine]
    for user, visible in (("user-123", {mine}), ("lead-456", {mine, routed}), (ADMIN, {other})):
        for request_id in (mine, routed, other):
            for path in (f"/api/approvals/{request_id}", f"/api/approvals/{request_id}/audit"):
                response = await client.get(path, headers=auth(user))
                expected = 200 if request_id in visible or user == ADMIN else 404
                assert response.status_code == expected, (user, path)


async def test_the_audit_trail_is_read_by_who_may_see_the_request_now(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    request_id = await seed(kaizen, approvers=["lead-456"])
    request = await kaizen.approval_storage.load(request_id)
    assert request is not None
    request.approvers = ["admin-1"]  # re-routed
    await kaizen.approval_storage.update(request)

    async def status(user: str) -> int:
        path = f"/api/approvals/{request_id}/audit"
        return (await client.get(path, headers=auth(user))).status_code

    assert (await status("lead-456"), await status("admin-1")) == (404, 200)
    await kaizen.approval_storage.delete(request_id)  # the trail stays
    for user, expected in (("user-123", 200), ("lead-456", 200), ("admin-1", 200), (ADMIN, 200)):
        assert await status(user) == expected, user
    assert await status("outsider") == 404


async def test_a_stranger_learns_nothing(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen)
    await kaizen.sessions.create_session_async(user_id="user-123")
    before = await snapshot(kaizen, request_id)
    user = auth("outsider")
    for method, path, body in ENDPOINTS[:4]:
        response = await client.request(method, path.format(id=request_id), json=body, headers=user)
        missing = await client.request(method, path.format(id="req-nope"), json=body, headers=user)
        assert_error(response, 404, "not_found")
        assert response.json()["error"]["message"].replace(request_id, "X") == missing.json()[
            "error"
        ]["message"].replace("req-nope", "X")
    for query in ("", "?status=pending", "?approver=lead-456", "?requested_by=user-123"):
        response = await client.get(f"/api/approvals{query}", headers=user)
        assert response.status_code == 200 and response.json()["items"] == []
    for query in ("", "?user=user-123"):
        response = await client.get(f"/api/sessions{query}", headers=user)
        assert response.status_code == 200 and response.json()["items"] == []
    assert await snapshot(kaizen, request_id) == before


async def test_409_when_already_decided(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen)
    ok = await client.post(f"/api/approvals/{request_id}/approve", headers=auth("lead-456"))
    assert ok.status_code == 200
    after_decision = await snapshot(kaizen, request_id)
    again = await client.post(f"/api/approvals/{request_id}/approve", headers=auth("admin-1"))
    assert_error(again, 409, "already_decided")
    response = await client.post(
        f"/api/approvals/{request_id}/reject", json={"reason": "late"}, headers=auth("admin-1")
    )
    assert_error(response, 409)
    assert await snapshot(kaizen, request_id) == after_decision


async def test_concurrent_decisions_one_wins(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen)
    responses = await asyncio.gather(
        client.post(f"/api/approvals/{request_id}/approve", headers=auth("lead-456")),
        client.post(
            f"/api/approvals/{request_id}/reject", json={"reason": "no"}, headers=auth("admin-1")
        ),
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    events = await service.approval_audit(kaizen, request_id)
    assert [e["event"] for e in events] in (["requested", "approved"], ["requested", "rejected"])


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("approve", b'{"approver_id": "outsider"}'),
        ("approve", b'{"approved_by": "admin-1"}'),
        ("approve", b"not json"),
        ("approve", b"[1, 2]"),
        ("approve", b'"yes"'),
        ("reject", b""),
        ("reject", b"{}"),
        ("reject", b'{"reason": ""}'),
        ("reject", b'{"reason": "   "}'),
        ("reject", b'{"reason": 42}'),
        ("reject", b'{"reason": null}'),
        ("reject", b'{"reason": "x", "approver_id": "lead-456"}'),
        ("reject", b'{"reason": "' + b"x" * 4001 + b'"}'),
        ("reject", b"\xff\xfe"),
        ("approve", b" " * (64 * 1024 + 1)),
    ],
)
async def test_422_for_bad_bodies_changes_nothing(
    client: httpx.AsyncClient, kaizen: Kaizen, path: str, content: bytes
) -> None:
    request_id = await seed(kaizen)
    before = await snapshot(kaizen, request_id)
    response = await client.post(
        f"/api/approvals/{request_id}/{path}",
        content=content,
        headers={**auth("lead-456"), "Content-Type": "application/json"},
    )
    assert_error(response, 422, "invalid_request")
    assert await snapshot(kaizen, request_id) == before


async def test_422_names_the_authenticated_approver(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    request_id = await seed(kaizen)
    response = await client.post(
        f"/api/approvals/{request_id}/approve", json={"approver_id": "x"}, headers=auth("admin-1")
    )
    assert "authenticated user" in assert_error(response, 422)["message"]


async def test_422_for_query_params_on_decisions(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen)
    before = await snapshot(kaizen, request_id)
    response = await client.post(
        f"/api/approvals/{request_id}/approve?approver=outsider", headers=auth("lead-456")
    )
    assert_error(response, 422)
    assert await snapshot(kaizen, request_id) == before


# -- sessions ------------------------------------------------------------------


async def test_sessions_are_readable_by_their_user_and_admins(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    mine = await kaizen.sessions.create_session_async(user_id="user-123")
    await kaizen.sessions.update_session_state_async(mine.session_id, {"k": 1}, "api")
    theirs = await kaizen.sessions.create_session_async(user_id="lead-456")
    response = await client.get("/api/sessions?user=user-123", headers=auth("user-123"))
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [s["session_id"] for s in items] == [mine.session_id]
    assert items[0]["state"] == {"k": 1}
    response = await client.get("/api/sessions", headers=auth("user-123"))
    assert [s["session_id"] for s in response.json()["items"]] == [mine.session_id]
    response = await client.get("/api/sessions?user=lead-456", headers=auth("user-123"))
    assert response.json()["items"] == []
    response = await client.get("/api/sessions", headers=auth(ADMIN))
    assert len(response.json()["items"]) == 2 and response.json()["next_offset"] is None
    first = (await client.get("/api/sessions?limit=1", headers=auth(ADMIN))).json()
    second = (await client.get("/api/sessions?limit=1&offset=1", headers=auth(ADMIN))).json()
    assert (first["next_offset"], second["next_offset"]) == (1, None)
    assert {first["items"][0]["session_id"], second["items"][0]["session_id"]} == {
        mine.session_id,
        theirs.session_id,
    }
    for flag in ("true", "1", "false", "0"):
        response = await client.get(
            f"/api/sessions?user=user-123&include_expired={flag}", headers=auth(ADMIN)
        )
        assert len(response.json()["items"]) == 1
    one = await client.get(f"/api/sessions/{mine.session_id}", headers=auth("user-123"))
    assert one.status_code == 200 and one.json()["user_id"] == "user-123"
    assert_error(
        await client.get(f"/api/sessions/{theirs.session_id}", headers=auth("user-123")), 404
    )
    one = await client.get(f"/api/sessions/{theirs.session_id}", headers=auth(ADMIN))
    assert one.status_code == 200 and one.json()["user_id"] == "lead-456"


async def test_sessions_errors(client: httpx.AsyncClient) -> None:
    user = auth("lead-456")
    assert_error(await client.get("/api/sessions/nope", headers=user), 404)
    assert_error(await client.get("/api/sessions?include_expired=maybe", headers=user), 422)
    assert_error(await client.get("/api/sessions?user=", headers=user), 422)
    assert_error(await client.delete("/api/sessions/nope", headers=user), 405)


# -- service routes --------------------------------------------------------------


async def test_healthz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_unknown_routes_are_json_errors(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/nothing", headers=auth("lead-456")), 404)
    assert_error(await client.delete("/api/approvals/x", headers=auth("lead-456")), 405)
