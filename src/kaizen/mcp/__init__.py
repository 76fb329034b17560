"""The MCP channel: ``kaizen mcp`` serves approvals and sessions to any MCP client.

Needs the ``mcp`` extra (``pip install 'kaizen-dataflow[mcp]'``), the official MCP
Python SDK. Tools: ``request_approval`` (optionally waiting for the decision),
``get_approval``, ``list_pending_approvals``, ``session_create``, ``session_get``,
``session_update``; resources ``approval://{id}`` and ``session://{id}``.

Example:
    >>> from kaizen import service
    >>> from kaizen.access import Viewer
    >>> from kaizen.mcp import create_server
    >>> server = create_server(service.Kaizen.connect("sqlite:///kaizen.db"),  # doctest: +SKIP
    ...                        user=Viewer("agent-ops"))
"""

from __future__ import annotations

try:
    import mcp.server.mcpserver  # noqa: F401 - the extra's presence, checked once
except ImportError as exc:  # pragma: no cover - exercised by the packaging test
    raise ImportError("kaizen.mcp needs the MCP SDK: pip install 'kaizen-dataflow[mcp]'") from exc

from kaizen.mcp.server import CHANNEL, TOOLS, create_server

__all__ = ["CHANNEL", "TOOLS", "create_server"]
