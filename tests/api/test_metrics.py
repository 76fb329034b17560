"""``/metrics``: Prometheus' text format, who may read it, and counters that move."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_support import ADMIN, assert_error, auth, seed, token_store
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kaizen.api import create_app
from kaizen.service import Kaizen
from refusals import SECRET, refused_url

APPROVE = "/api/approvals/{request_id:path}/approve"


async def _samples(client: httpx.AsyncClient) -> list[Sample]:
    response = await client.get("/metrics", headers=auth(ADMIN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [s for f in text_string_to_metric_families(response.text) for s in f.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sample ``name`` with exactly these labels (0 when absent: not counted yet)."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else 0.0


async def test_metrics_need_an_admin_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/metrics"), 401, "unauthorized")
    assert_error(await client.get("/metrics", headers=auth("lead-456")), 403, "admin_required")
    assert (await client.get("/metrics", headers=auth(ADMIN))).status_code == 200


async def test_public_metrics_need_no_token(kaizen: Kaizen) -> None:
    app = create_app(kaizen, tokens=token_store(), metrics_public=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200 and "kaizen_approvals_pending" in response.text


async def test_counters_move_after_requests_and_decisions(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    first, second, _ = [await seed(kaizen) for _ in range(3)]
    before = await _samples(client)
    assert _value(before, "kaizen_approvals_pending") == 3
    assert _value(before, "kaizen_database_up") == 1
    assert (
        await client.post(f"/api/approvals/{first}/approve", headers=auth("lead-456"))
    ).is_success
    again = await client.post(f"/api/approvals/{first}/approve", headers=auth("admin-1"))
    assert_error(again, 409, "already_decided")
    body = {"reason": "no"}
    refused = await client.post(
        f"/api/approvals/{second}/reject", headers=auth("outsider"), json=body
    )
    assert refused.status_code == 404  # a stranger does not even learn it exists
    assert (await client.get("/api/approvals", headers=auth("lead-456"))).is_success

    after = await _samples(client)
    assert _value(after, "kaizen_approvals_pending") == 2
    decisions = "kaizen_approval_decisions_total"
    assert _value(after, decisions, action="approve", outcome="approved") == 1
    assert _value(after, decisions, action="approve", outcome="already_decided") == 1
    assert _value(after, decisions, action="reject", outcome="not_found") == 1
    requests = "kaizen_http_requests_total"
    assert _value(after, requests, method="POST", route=APPROVE, status="200") == 1
    assert _value(after, requests, method="POST", route=APPROVE, status="409") == 1
    listed = _value(after, requests, method="GET", route="/api/approvals", status="200")
    assert listed == 1
    scrapes = _value(after, requests, method="GET", route="/metrics", status="200")
    assert scrapes == _value(before, requests, method="GET", route="/metrics", status="200") + 1
    latency = "kaizen_db_call_duration_seconds_count"
    assert _value(after, latency, call="approve") == 2  # the failed call is timed too
    assert _value(after, latency, call="list_approvals") == 1
    assert _value(after, latency, call="pending_count") == 2
    assert (
        _value(after, "kaizen_http_request_duration_seconds_count", method="POST", route=APPROVE)
        == 2
    )
    assert any(s.name == "process_resident_memory_bytes" for s in after)


async def test_a_quorum_vote_counts_as_voted(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    request_id = await seed(kaizen, quorum=2)
    response = await client.post(f"/api/approvals/{request_id}/approve", headers=auth("lead-456"))
    assert response.json()["status"] == "pending"
    samples = await _samples(client)
    voted = _value(samples, "kaizen_approval_decisions_total", action="approve", outcome="voted")
    assert voted == 1


async def test_unmatched_paths_share_one_label(client: httpx.AsyncClient) -> None:
    for path in ("/nope/1", "/nope/2"):
        assert (await client.get(path)).status_code == 404
    samples = await _samples(client)
    assert (
        _value(samples, "kaizen_http_requests_total", method="GET", route="unmatched", status="404")
        == 2
    )
    assert not any("/nope" in str(s.labels) for s in samples)


@pytest.fixture
async def refused(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app whose database refuses the server's user."""
    async with Kaizen.open(refused_url(db_url, "user")) as kaizen:
        app = create_app(kaizen, tokens=token_store())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield http


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
async def test_a_refused_database_is_503_and_database_down(
    refused: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = assert_error(
        await refused.get("/api/approvals", headers=auth("lead-456")), 503, "database_refused"
    )
    assert "no_such_user_x" not in str(body)  # the client learns nothing of the configuration
    assert "cannot use database" in caplog.text and SECRET not in caplog.text  # the operator does
    assert (await refused.get("/healthz")).status_code == 503
    samples = await _samples(refused)
    assert _value(samples, "kaizen_database_up") == 0
