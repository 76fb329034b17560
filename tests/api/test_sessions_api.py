"""Sessions through the API on SQLite, PostgreSQL and MySQL: create (``POST
/api/sessions``) and merge (``PATCH /api/sessions/{id}/state``) as the api channel,
continued from the CLI; strangers, bad bodies and expired sessions change nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from api_support import ADMIN, assert_error, auth

from kaizen import service
from kaizen.api._params import MAX_BODY
from kaizen.cli import main
from kaizen.integrations.nexus import CrossChannelSession, SessionNotFoundError
from kaizen.service import Kaizen


async def create(client: httpx.AsyncClient, user: str = "user-123", **body: Any) -> dict[str, Any]:
    response = await client.post("/api/sessions", json=body, headers=auth(user))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def patch(
    client: httpx.AsyncClient, session_id: str, body: Any, user: str = "user-123"
) -> httpx.Response:
    return await client.patch(f"/api/sessions/{session_id}/state", json=body, headers=auth(user))


async def test_create_a_session_of_the_token_user(client: httpx.AsyncClient) -> None:
    made = await create(client, ttl_hours=2, state={"q": "status?"})
    assert made["user_id"] == "user-123" and made["ttl_seconds"] == 7200
    assert made["state"] == {"q": "status?"} and made["expired"] is False
    assert made["channel_activity"] == {"api": made["created_at"]}
    assert made["created_at"].endswith("+00:00")
    shown = await client.get(f"/api/sessions/{made['session_id']}", headers=auth("user-123"))
    assert shown.json() == made
    plain = await create(client)
    assert plain["ttl_seconds"] == 3600 and plain["state"] == {}
    assert list(plain["channel_activity"]) == ["api"]
    same = await create(client, user_id="user-123", state=None, ttl_hours=None)
    assert same["user_id"] == "user-123"


async def test_only_an_admin_creates_a_session_for_someone_else(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    made = await create(client, ADMIN, user_id="lead-456", state={"by": "admin"})
    assert made["user_id"] == "lead-456"
    theirs = await client.get(f"/api/sessions/{made['session_id']}", headers=auth("lead-456"))
    assert theirs.status_code == 200 and theirs.json()["state"] == {"by": "admin"}
    response = await client.post(
        "/api/sessions", json={"user_id": "lead-456"}, headers=auth("user-123")
    )
    assert_error(response, 403, "admin_required")
    assert await service.list_sessions(kaizen, user="user-123") == []


@pytest.mark.parametrize(
    "body",
    [
        {"ttl_hours": "2"},
        {"ttl_hours": 0},
        {"ttl_hours": -1},
        {"ttl_hours": True},
        {"ttl_hours": 1e9},
        {"state": [1]},
        {"state": "x"},
        {"state": {"n": 2**64}},
        {"state": {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}},
        {"user_id": 5},
        {"user_id": " padded"},
        {"user": "x"},
        [1],
    ],
)
async def test_bad_create_bodies_are_422_and_create_nothing(
    client: httpx.AsyncClient, kaizen: Kaizen, body: Any
) -> None:
    response = await client.post("/api/sessions", json=body, headers=auth(ADMIN))
    assert_error(response, 422, "invalid_request")
    assert await service.list_sessions(kaizen, include_expired=True) == []


async def test_patch_merges_keys_as_the_api_channel(client: httpx.AsyncClient) -> None:
    made = await create(client, state={"keep": 1, "n": {"x": 1}})
    sid = made["session_id"]
    response = await patch(client, sid, {"n": None, "new": [1, {"y": "z"}]})
    assert response.status_code == 200, response.text
    merged = response.json()
    assert merged["state"] == {"keep": 1, "n": None, "new": [1, {"y": "z"}]}
    assert merged["last_accessed"] > made["last_accessed"]
    assert merged["channel_activity"]["api"] == merged["last_accessed"]
    again = await patch(client, sid, {}, user=ADMIN)  # an admin may; {} only refreshes
    assert again.status_code == 200 and again.json()["state"] == merged["state"]


async def test_api_then_cli_then_api_share_one_session(
    client: httpx.AsyncClient, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    made = await create(client, state={"question": "status?"})
    sid = made["session_id"]
    assert (await patch(client, sid, {"from_api": 1})).status_code == 200
    argv = ["--db", db_url, "sessions", "update", sid, "--set", "answer=all green", "--json"]
    code = await asyncio.to_thread(main, [*argv, "--as", "user-123"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert set(json.loads(out)["channel_activity"]) == {"api", "cli"}
    response = await patch(client, sid, {"from_api_again": 2})
    assert response.status_code == 200
    final = response.json()
    assert final["state"] == {
        "question": "status?",
        "from_api": 1,
        "answer": "all green",
        "from_api_again": 2,
    }
    assert set(final["channel_activity"]) == {"api", "cli"}
    assert final["channel_activity"]["api"] > final["channel_activity"]["cli"]


async def test_strangers_get_404_and_write_nothing(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    sid = (await create(client, state={"v": 1}))["session_id"]
    before = await service.get_session(kaizen, sid)
    response = await patch(client, sid, {"v": 2}, user="outsider")
    assert_error(response, 404, "not_found")
    assert await service.get_session(kaizen, sid) == before  # not even its expiry moved
    assert_error(await patch(client, "missing", {"v": 2}), 404, "not_found")


async def test_expired_sessions_are_404_and_stay_as_they_were(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    old = CrossChannelSession(user_id="user-123", created_at=past, ttl=timedelta(hours=1))
    sid = await kaizen.session_storage.save(old)
    assert_error(await patch(client, sid, {"v": 2}), 404, "not_found")
    stored = await service.get_session(kaizen, sid)
    assert stored["state"] == {} and stored["channel_activity"] == {}


async def test_ids_with_slashes(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    for sid in ("a/b", "x/state"):
        session = CrossChannelSession(session_id=sid, user_id="user-123")
        await kaizen.session_storage.save(session)
        quoted = sid.replace("/", "%2F")
        response = await patch(client, quoted, {"k": sid})
        assert response.status_code == 200 and response.json()["session_id"] == sid
        shown = await client.get(f"/api/sessions/{quoted}", headers=auth("user-123"))
        assert shown.json()["state"] == {"k": sid}
    # Without the "/state" suffix it is the session "x/state" itself, which takes no PATCH.
    response = await client.patch(
        "/api/sessions/x%2Fstate", json={"k": 1}, headers=auth("user-123")
    )
    assert_error(response, 405)
    with pytest.raises(SessionNotFoundError):
        await service.get_session(kaizen, "x")
    assert (await service.get_session(kaizen, "x/state"))["state"] == {"k": "x/state"}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"[1, 2]",
        b'"text"',
        b"null",
        b"{not json",
        b'{"x": NaN}',
        b'{"x": 1e999}',
        b'{"n": 18446744073709551616}',
        b'{"s": "\\ud800"}',
        b"[" * 30_000 + b"]" * 30_000,  # nested too deeply for the JSON parser
        b'{"big": "' + b"x" * MAX_BODY + b'"}',
        b"\xff\xfe{",
    ],
)
async def test_bad_patch_bodies_are_422_and_write_nothing(
    client: httpx.AsyncClient, kaizen: Kaizen, content: bytes
) -> None:
    sid = (await create(client, state={"v": 1}))["session_id"]
    before = await service.get_session(kaizen, sid)
    response = await client.patch(
        f"/api/sessions/{sid}/state",
        content=content,
        headers={**auth("user-123"), "content-type": "application/json"},
    )
    assert_error(response, 422, "invalid_request")
    assert await service.get_session(kaizen, sid) == before


async def test_session_calls_need_a_token_and_take_no_query(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/api/sessions", json={}), 401)
    assert_error(await client.patch("/api/sessions/x/state", json={}), 401)
    response = await client.post("/api/sessions?user=x", json={}, headers=auth("user-123"))
    assert_error(response, 422)
    response = await client.patch("/api/sessions/x/state?y=1", json={}, headers=auth("user-123"))
    assert_error(response, 422)


async def test_openapi_describes_the_session_calls(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas, paths = doc["components"]["schemas"], doc["paths"]
    made = await create(client, state={"a": 1})
    assert set(made) == set(schemas["Session"]["properties"]) == set(schemas["Session"]["required"])
    assert set(schemas["SessionCreateBody"]["properties"]) == {"ttl_hours", "state", "user_id"}
    assert set(paths["/api/sessions"]["post"]["responses"]) == {"201", "401", "403", "422", "503"}
    merge = paths["/api/sessions/{session_id}/state"]["patch"]
    assert set(merge["responses"]) == {"200", "401", "404", "422", "503"}
    assert merge["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SessionStateBody"
    }
