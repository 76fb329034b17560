"""The app as a whole: lifespan, pages, OpenAPI, health, notifier links, unexpected errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import HASHED, auth, seed
from starlette.routing import Route

from dataflow.errors import ConfigurationError
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
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield http


async def test_app_opens_and_closes_its_database_from_a_url(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'k.db'}", tokens=HASHED)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
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
    for name in ("common.js", "votes.js"):  # the modules it imports: data is never markup
        module = await client.get(f"/static/{name}")
        assert module.headers["content-type"].startswith("text/javascript")
        assert "export function" in module.text and "innerHTML" not in module.text
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
        if isinstance(r, Route)
        and (r.path.startswith("/api") or r.path in ("/healthz", "/metrics"))
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


async def test_notifier_links_open_the_inbox_and_change_nothing(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    sent: list[dict[str, Any]] = []

    class Recorder:
        async def send_approval_request(self, approver_id: str, payload: dict[str, Any]) -> None:
            sent.append(payload)

    manager = kaizen.approvals
    manager.protocol = Recorder()
    manager.base_url = "https://kaizen.example.com"
    manager.set_approvers("copilot-001", ["lead-456"])
    request_id = await manager.request_approval("copilot-001", "user-123", {"cost": 15.0})
    page = f"https://kaizen.example.com/approvals/{request_id}"
    assert sent[0]["url"] == page
    assert sent[0]["approve_url"] == f"{page}?action=approve"
    assert sent[0]["reject_url"] == f"{page}?action=reject"
    for url in (sent[0]["approve_url"], sent[0]["reject_url"]):
        # Clicked in an e-mail: a GET without a token, which opens the inbox page.
        response = await client.get(url.removeprefix("https://kaizen.example.com"))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "/static/inbox.js" in response.text
    assert (await service.get_approval(kaizen, request_id))["status"] == "pending"
    listed = await client.get(f"/api/approvals/{request_id}", headers=auth("lead-456"))
    links = listed.json()["links"]
    assert links["approve_page"] == sent[0]["approve_url"]
    assert links["reject_page"] == sent[0]["reject_url"]
    # Deciding is an authenticated POST to the API.
    response = await client.post(links["approve"].removeprefix("https://kaizen.example.com"))
    assert response.status_code == 401
    response = await client.post(
        links["approve"].removeprefix("https://kaizen.example.com"), headers=auth("lead-456")
    )
    assert response.status_code == 200, response.text
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
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.get(f"/api/approvals/{request_id}", headers=auth("lead-456"))
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }


async def _get(app: Any, host: str, path: str, user: str = "lead-456") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        return await http.get(path, headers={**auth(user), "Host": host})


async def test_links_are_never_built_from_an_untrusted_host(kaizen: Kaizen) -> None:
    request_id = await seed(kaizen)
    path = f"/api/approvals/{request_id}"
    app = create_app(kaizen, tokens=HASHED)  # no base URL: the loopback names only
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""):
        response = await _get(app, host, path)
        assert response.status_code == 400, host
        assert response.json()["error"]["code"] == "untrusted_host"
        assert "evil" not in response.text
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        response = await _get(app, host, path)
        assert response.status_code == 200, host
        root = f"http://{host}/approvals/"
        assert response.json()["links"]["page"].startswith(root)
    # Allowed hosts as configured; a subdomain pattern does not match its parent.
    app = create_app(kaizen, tokens=HASHED, allowed_hosts=["kaizen.example.com", "*.corp.test"])
    assert (await _get(app, "kaizen.example.com", path)).status_code == 200
    assert (await _get(app, "inbox.corp.test", path)).status_code == 200
    assert (await _get(app, "corp.test", path)).status_code == 400
    assert (await _get(app, "127.0.0.1", path)).status_code == 400
    # With a public URL the links come from it, whatever the Host says.
    app = create_app(kaizen, tokens=HASHED, base_url="https://kaizen.example.com")
    response = await _get(app, "evil.example", path)
    assert response.json()["links"]["page"] == f"https://kaizen.example.com/approvals/{request_id}"


@pytest.mark.parametrize(
    "hosts", ["kaizen.example.com", ["http://x.example"], ["a b"], [""], [42], ["x/y"]]
)
async def test_bad_allowed_hosts_are_refused(kaizen: Kaizen, hosts: Any) -> None:
    with pytest.raises(ConfigurationError, match="allowed"):
        create_app(kaizen, tokens=HASHED, allowed_hosts=hosts)


async def test_openapi_describes_what_the_api_returns_and_accepts(
    client: httpx.AsyncClient, kaizen: Kaizen
) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    request_id = await seed(kaizen, quorum=2)
    body = {"comment": "ok", "metadata": {"environment": "staging"}, "on_behalf_of": None}
    response = await client.post(
        f"/api/approvals/{request_id}/approve", json=body, headers=auth("lead-456")
    )
    assert response.status_code == 200, response.text
    approval = response.json()
    assert set(approval) <= set(schemas["Approval"]["properties"])
    assert set(schemas["Approval"]["required"]) <= set(approval)
    assert set(approval["votes"][0]) == set(schemas["Vote"]["properties"])
    assert set(approval["progress"]) == set(schemas["Progress"]["properties"])
    assert set(schemas["ApproveBody"]["properties"]) == set(body)
    response = await client.post("/api/delegations", json={"to": "x"}, headers=auth("lead-456"))
    assert set(response.json()) == set(schemas["Delegation"]["properties"])
    listed = (await client.get("/api/delegations", headers=auth("lead-456"))).json()
    assert set(listed) == set(schemas["Delegations"]["properties"])
    paths = doc["paths"]
    assert set(paths["/api/delegations"]["post"]["responses"]) == {
        "201", "401", "403", "422", "503"
    }  # fmt: skip
    assert set(paths["/api/delegations/{delegate_id}"]["delete"]["responses"]) == {
        "204", "401", "403", "404", "422", "503"
    }  # fmt: skip


def test_the_inbox_checks_the_text_length_the_api_checks() -> None:
    import re
    from importlib import resources

    from kaizen.governance.models import MAX_REASON

    script = (resources.files("kaizen.api") / "static" / "votes.js").read_text()
    found = re.search(r"const MAX_TEXT = (\d+);", script)
    assert found is not None and int(found[1]) == MAX_REASON
