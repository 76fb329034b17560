"""Helpers of the MCP tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from mcp import Client

__all__ = ["AGENT", "LEAD", "Connect", "error_text", "structured"]

#: The agent whose stored policy (set by the ``kaizen`` fixture) routes requests to LEAD.
AGENT, LEAD = "deployer", "lead-1"
#: ``async with connect(user) as client`` (the ``connect`` fixture).
Connect = Callable[[str], contextlib.AbstractAsyncContextManager[Client]]


def structured(result: Any) -> dict[str, Any]:
    """The structured answer of a successful tool call."""
    assert not result.is_error, result.content
    content: dict[str, Any] = result.structured_content
    return content


def error_text(result: Any) -> str:
    """The message of a tool error."""
    assert result.is_error
    return str(result.content[0].text)
