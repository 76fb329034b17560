"""The session flow behind ``kaizen demo``, on every database."""

from __future__ import annotations

from kaizen.integrations.nexus.demo import session_flow


async def test_session_flow_survives_reopening_the_database(db_url: str) -> None:
    result = await session_flow(db_url, user_id="alice")
    assert result["survived"] is True
    assert result["created"]["state"] == {}
    assert result["after_api"]["state"] == {"question": "status?"}
    assert set(result["after_api"]["channels"]) == {"api"}
    assert result["reloaded"] == result["after_cli"]
    assert result["reloaded"]["state"] == {"question": "status?", "answer": "all green"}
    assert result["reloaded"]["user_id"] == "alice"
    assert result["reloaded"]["ttl_seconds"] == 7200
