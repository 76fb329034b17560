"""Hostile requests get 4xx JSON errors in our format, change nothing, and log no crash."""

from __future__ import annotations

import logging

import httpx
import pytest
from api_support import auth, seed, snapshot

from dataflow.errors import ConcurrencyError, ValidationError
from dataflow.errors import TimeoutError as DatabaseTimeout
from kaizen.outcomes import outcome_of, public_message
from kaizen.service import Kaizen


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60_000,
        b'{"reason": ' + b"[" * 60_000 + b"]" * 60_000 + b"}",
        b'{"reason": "bad \\ud800 surrogate"}',
        b'{"reason": "nul \\u0000 inside"}',
        b'{"reason": "\xed\xa0\x80"}',
    ],
)
async def test_hostile_reject_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient, kaizen: Kaizen, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    request_id = await seed(kaizen)
    before = await snapshot(kaizen, request_id)
    with caplog.at_level(logging.ERROR):
        response = await client.post(
            f"/api/approvals/{request_id}/reject",
            content=body,
            headers={**auth("lead-456"), "Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("invalid_request", "unprocessable_entity")
    assert await snapshot(kaizen, request_id) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", ["/api/approvals/%ED%A0%80", "/api/approvals/a%00b"])
async def test_ids_no_database_could_hold_are_4xx(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers=auth("lead-456"))
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


def test_driver_text_is_never_shown_to_clients() -> None:
    refused = ValidationError('invalid byte sequence for encoding "UTF8": 0x00 in row 7')
    refused.from_driver = True
    assert public_message(refused) == "the database refused a value of the request"
    ours = ValidationError("reason contains a NUL character")
    assert public_message(ours) == "reason contains a NUL character"
    timeout = DatabaseTimeout("timed out after 1 s ...", what="statement", seconds=1)
    assert public_message(timeout) == "the database did not answer in time"
    assert outcome_of(timeout).status == 503  # type: ignore[union-attr]
    assert outcome_of(ConcurrencyError("deadlock")).status == 409  # type: ignore[union-attr]
    assert outcome_of(KeyError("not ours")) is None
