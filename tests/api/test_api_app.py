"""The app as a whole: lifespan, pages, OpenAPI, health, notifier links, unexpected errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import HASHED, auth, seed
from starlette.routing import Route

from kaizen import service
from kaizen.api import TokenConfigError, TokenStore, create_app
from kaizen.service import Kaizen

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/unreachable"


@pytest.fixture
async def broken() -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app whose database cannot be reached."""
    async with Kaizen.open(UNREACHABLE) as kaizen:
        app = create_app(kaizen, tokens=TokenStore(HASHED))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_app_opens_and_closes_its_database_from_a_url(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'k.db'}", tokens=HASHED)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/api/approvals", headers=auth("lead-456"))
        assert response.status_code == 200 and response.json()["items"] == []
        assert "servers" not in (await client.get("/openapi.json")).json()


def test_bad_token_mapping_is_refused() -> None:
    with pytest.raises(TokenConfigError):
        create_app("sqlite://", tokens={"plain-token": "alice"})


async def test_inbox_page_and_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    assert '<label for="token">' in html and 'aria-live="polite"' in html
    script = await client.get("/static/inbox.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in script.text and "innerHTML" not in script.text
    style = await client.get("/static/inbox.css")
    assert style.headers["content-type"].startswith("text/css")


async def test_openapi_documents_every_api_route(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "https://kaizen.example.com"}]
    app = create_app("sqlite://", tokens={})
    routes = {
        (r.path.replace(":path", ""), method.lower())
        for r in app.routes
        if isinstance(r, Route) and (r.path.startswith("/api") or r.path == "/healthz")
        for method in r.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented
    decide = doc["paths"]["/api/approvals/{request_id}/approve"]["post"]["responses"]
    assert set(decide) == {"200", "401", "403", "404", "409", "422", "503"}
    schemas = doc["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas


async def test_notifier_links_point_at_this_api(client: httpx.AsyncClient, kaizen: Kaizen) -> None:
    sent: list[dict[str, Any]] = []

    class Recorder:
        async def send_approval_request(self, approver_id: str, payload: dict[str, Any]) -> None:
            sent.append(payload)

    manager = kaizen.approvals
    manager.protocol = Recorder()
    manager.base_url = "https://kaizen.example.com"
    manager.set_approvers("copilot-001", ["lead-456"])
    request_id = await manager.request_approval("copilot-001", "user-123", {"cost": 15.0})
    approve_url = sent[0]["approve_url"]
    assert approve_url.startswith("https://kaizen.example.com/api/approvals/")
    path = approve_url.removeprefix("https://kaizen.example.com")
    response = await client.post(path, headers=auth("lead-456"))
    assert response.status_code == 200, response.text
    assert response.json()["links"]["approve"] == approve_url
    stored = await service.get_approval(kaizen, request_id)
    assert stored["status"] == "approved" and stored["approved_by"] == "lead-456"


async def test_healthz_503_when_the_database_is_down(broken: httpx.AsyncClient) -> None:
    response = await broken.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"


async def test_api_503_hides_the_database_url(broken: httpx.AsyncClient) -> None:
    response = await broken.get("/api/approvals", headers=auth("lead-456"))
    assert response.status_code == 503
    assert "127.0.0.1" not in response.text and "postgres" not in response.text


async def test_unexpected_errors_are_json_500(
    client: httpx.AsyncClient, kaizen: Kaizen, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = await seed(kaizen)

    async def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "get_approval", fail)
    app = create_app(kaizen, tokens=HASHED)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get(f"/api/approvals/{request_id}", headers=auth("lead-456"))
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }
