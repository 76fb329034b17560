"""Votes through the API on SQLite, PostgreSQL and MySQL: quorum progress, comments,
edit-and-approve, the veto, a second vote refused, and bodies that are refused whole."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from api_support import ADMIN, assert_error, auth, seed, snapshot, status_of

from kaizen import service
from kaizen.service import Kaizen

ORIGINAL = {"environment": "production", "cost": 15.0}
EDITED = {"environment": "staging", "cost": 10.0, "dry_run": True}


async def vote(
    client: httpx.AsyncClient, user: str, request_id: str, action: str = "approve", **body: Any
) -> httpx.Response:
    return await client.post(
        f"/api/approvals/{request_id}/{action}", json=body or None, headers=auth(user)
    )


async def test_a_quorum_of_two_through_the_api(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen, quorum=2, metadata=ORIGINAL)
    first = await vote(client, "lead-456", request_id, comment="fine by me, watch the cost")
    assert first.status_code == 200, first.text
    data = first.json()
    assert (data["status"], data["approved_by"], data["approved_at"]) == ("pending", None, None)
    assert data["quorum"] == 2
    assert data["progress"] == {"approvals": 1, "quorum": 2, "text": "1 of 2", "metadata": None}
    assert data["eligible"] == ["admin-1"]
    [cast] = data["votes"]
    assert cast["at"].endswith("+00:00")
    assert {k: v for k, v in cast.items() if k != "at"} == {
        "approver_id": "lead-456",
        "decision": "approve",
        "comment": "fine by me, watch the cost",
        "on_behalf_of": None,
        "metadata": None,
    }
    # Reading it back (one request, the list) shows the same vote and progress.
    one = (await client.get(f"/api/approvals/{request_id}", headers=auth("admin-1"))).json()
    listed = (await client.get("/api/approvals", headers=auth("admin-1"))).json()["items"]
    for shown in (one, listed[0]):
        assert (shown["votes"], shown["progress"]) == (data["votes"], data["progress"])
        assert shown["escalations"] == 0 and shown["approved_metadata"] is None
    second = await vote(client, "admin-1", request_id)
    assert second.status_code == 200, second.text
    done = second.json()
    assert (done["status"], done["approved_by"]) == ("approved", "admin-1")
    assert done["progress"]["text"] == "2 of 2" and done["eligible"] == []
    assert [v["approver_id"] for v in done["votes"]] == ["lead-456", "admin-1"]
    events = await service.approval_audit(kaizen, request_id)
    assert [(e["event"], e["actor"]) for e in events] == [
        ("requested", "user-123"),
        ("voted", "lead-456"),
        ("approved", "admin-1"),
    ]


async def test_a_second_vote_is_409_already_voted(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    request_id = await seed(kaizen, quorum=2)
    assert (await vote(client, "lead-456", request_id)).status_code == 200
    before = await snapshot(kaizen, request_id)
    assert_error(await vote(client, "lead-456", request_id), 409, "already_voted")
    again = await vote(client, "lead-456", request_id, "reject", reason="changed my mind")
    assert_error(again, 409, "already_voted")
    assert await snapshot(kaizen, request_id) == before


async def test_one_rejection_vetoes_a_quorum(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen, quorum=2)
    assert (await vote(client, "lead-456", request_id)).json()["progress"]["text"] == "1 of 2"
    response = await vote(client, "admin-1", request_id, "reject", reason="not this week")
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["status"], data["approved_by"]) == ("rejected", "admin-1")
    assert data["rejection_reason"] == "not this week"
    assert [(v["decision"], v["comment"]) for v in data["votes"]] == [
        ("approve", None),
        ("reject", "not this week"),
    ]
    assert_error(await vote(client, ADMIN, request_id), 409, "already_decided")


async def test_edit_and_approve_stores_the_approved_version(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    request_id = await seed(
        kaizen, quorum=2, metadata=ORIGINAL, approvers=["lead-456", "admin-1", ADMIN]
    )
    first = (
        await vote(client, "lead-456", request_id, metadata=EDITED, comment="staging first")
    ).json()
    assert first["status"] == "pending"
    assert first["votes"][0]["metadata"] == EDITED
    assert first["progress"] == {"approvals": 1, "quorum": 2, "text": "1 of 2", "metadata": EDITED}
    # An approval of the version as requested does not count toward the edited one.
    second = (await vote(client, "admin-1", request_id)).json()
    assert second["status"] == "pending" and second["progress"]["approvals"] == 1
    third = await vote(client, ADMIN, request_id, metadata=EDITED)
    assert third.status_code == 200, third.text
    done = third.json()
    assert (done["status"], done["approved_by"]) == ("approved", ADMIN)
    assert done["approved_metadata"] == EDITED
    assert done["request_metadata"] == ORIGINAL  # what was asked stays as it was
    stored = await service.get_approval(kaizen, request_id)
    assert status_of(stored) == "approved" and stored["approved_metadata"] == EDITED
    last = (await service.approval_audit(kaizen, request_id))[-1]
    assert last["details"]["diff"] == {
        "changed": {"environment": ["production", "staging"], "cost": [15.0, 10.0]},
        "added": {"dry_run": True},
        "removed": [],
    }


async def test_approving_the_metadata_as_requested_is_no_edit(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    request_id = await seed(kaizen, metadata=ORIGINAL)
    response = await vote(client, "admin-1", request_id, metadata=dict(ORIGINAL))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    assert response.json()["approved_metadata"] is None


async def test_versions_are_equal_as_json_values(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    # JavaScript sends 10.0 as 10: the same JSON number, so the same version.
    request_id = await seed(kaizen, quorum=2, metadata=ORIGINAL)
    assert (await vote(client, "lead-456", request_id, metadata=EDITED)).status_code == 200
    as_js = {"dry_run": True, "cost": 10, "environment": "staging"}
    done = (await vote(client, "admin-1", request_id, metadata=as_js)).json()
    assert (done["status"], done["approved_metadata"]) == ("approved", EDITED)
    unchanged = await seed(kaizen, metadata=ORIGINAL)
    done = (await vote(client, "admin-1", unchanged, metadata={**ORIGINAL, "cost": 15})).json()
    assert (done["status"], done["approved_metadata"]) == ("approved", None)
    # ... but true is not 1.
    flagged = await seed(kaizen, metadata={"flag": True})
    done = (await vote(client, "admin-1", flagged, metadata={"flag": 1})).json()
    assert done["approved_metadata"] == {"flag": 1}


async def test_null_fields_and_an_empty_body_approve_as_requested(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    nulls = await seed(kaizen)
    response = await vote(client, "admin-1", nulls, comment=None, metadata=None, on_behalf_of=None)
    assert response.status_code == 200 and response.json()["status"] == "approved"
    empty = await seed(kaizen)
    response = await client.post(f"/api/approvals/{empty}/approve", headers=auth("admin-1"))
    assert response.status_code == 200 and response.json()["votes"][0]["comment"] is None


DEEP = b'{"metadata": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}"


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("approve", b'{"comment": 5}'),
        ("approve", b'{"comment": ["a"]}'),
        ("approve", b'{"comment": "' + b"x" * 4001 + b'"}'),
        ("approve", b'{"comment": "nul \\u0000 inside"}'),
        ("approve", b'{"metadata": [1, 2]}'),
        ("approve", b'{"metadata": "{\\"cost\\": 1}"}'),
        ("approve", b'{"metadata": 5}'),
        ("approve", b'{"metadata": true}'),
        ("approve", b'{"metadata": {"cost": NaN}}'),
        ("approve", b'{"metadata": {"cost": 1e400}}'),
        ("approve", b'{"metadata": {"big": 123456789012345678901234567890}}'),
        ("approve", b'{"metadata": {"bad": "\\ud800"}}'),
        ("approve", DEEP),
        ("approve", b'{"on_behalf_of": 7}'),
        ("approve", b'{"on_behalf_of": ""}'),
        ("approve", b'{"on_behalf_of": " admin-1"}'),
        ("approve", b'{"comment": "ok", "reason": "x"}'),
        ("approve", b'{"edited_metadata": {}}'),
        ("reject", b'{"reason": "no", "on_behalf_of": 7}'),
        ("reject", b'{"reason": "no", "comment": "x"}'),
        ("reject", b'{"reason": "no", "metadata": {}}'),
    ],
)
async def test_422_for_bad_vote_bodies_changes_nothing(
    client: httpx.AsyncClient,
    kaizen: Kaizen,
    caplog: pytest.LogCaptureFixture,
    path: str,
    content: bytes,
) -> None:
    request_id = await seed(kaizen, quorum=2)
    before = await snapshot(kaizen, request_id)
    with caplog.at_level(logging.ERROR):
        response = await client.post(
            f"/api/approvals/{request_id}/{path}",
            content=content,
            headers={**auth("lead-456"), "Content-Type": "application/json"},
        )
    assert_error(response, 422, "invalid_request")
    assert await snapshot(kaizen, request_id) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_422_names_the_field_and_its_type(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen)
    response = await vote(client, "lead-456", request_id, metadata=[1])
    assert assert_error(response, 422)["message"] == "metadata must be a JSON object, not an array"
    response = await vote(client, "lead-456", request_id, comment=3)
    assert assert_error(response, 422)["message"] == "comment must be a string, not a number"
