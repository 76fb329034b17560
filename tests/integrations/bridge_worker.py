"""Another app instance for the bridge tests: decides requests, then resumes a paused
run from its stored JSON with objects of its own.

Run as ``python bridge_worker.py DATABASE_URL PENDING_RUN_FILE DECISIONS_JSON
[openai|pydantic]``; each decision is ``{"id", "approve": true, "metadata"?}`` or
``{"id", "reason"}``. Prints ``{"result": {...}}``: what the tools received, what the
model saw, how the run ended, or ``{"conflict": message}`` when another resume of the
same run carried out its approved calls.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bridge_support import (
    APPROVERS,
    CALLS,
    REQUESTER,
    SEEN,
    make_manager,
    openai_agent,
    pydantic_agent,
)

from dataflow import ConcurrencyError, DataFlow
from kaizen.governance import ExternalAgentApprovalManager
from kaizen.integrations import openai_agents, pydantic_ai


async def _decide(manager: ExternalAgentApprovalManager, decisions: list[dict[str, Any]]) -> None:
    for decision in decisions:
        request_id = str(decision["id"])
        if decision.get("approve"):
            edited = decision.get("metadata")
            assert edited is None or isinstance(edited, dict)
            await manager.approve_request(request_id, APPROVERS[0], metadata=edited)
        else:
            await manager.reject_request(request_id, APPROVERS[1], str(decision["reason"]))


async def _resume_openai(manager: ExternalAgentApprovalManager, saved: str) -> dict[str, Any]:
    bridge = openai_agents.OpenAIAgentsApprovals(
        manager, external_agent_id="support-bot", requested_by=REQUESTER
    )
    outcome = await bridge.resume(openai_agent(turns=2), openai_agents.PendingRun.from_json(saved))
    assert outcome.result is not None
    return {
        "final": outcome.result.final_output,
        "paused": outcome.pending is not None,
        "decisions": [[d.tool_name, d.status.value, d.edited] for d in outcome.decisions],
    }


async def _resume_pydantic(manager: ExternalAgentApprovalManager, saved: str) -> dict[str, Any]:
    bridge = pydantic_ai.PydanticAIApprovals(
        manager, external_agent_id="support-bot", requested_by=REQUESTER
    )
    outcome = await bridge.resume(pydantic_agent(), pydantic_ai.PendingRun.from_json(saved))
    assert outcome.result is not None
    return {"final": outcome.result.output, "paused": outcome.pending is not None}


async def main(url: str, saved: str, decisions: list[dict[str, Any]], framework: str) -> None:
    async with DataFlow(url) as db:
        manager = make_manager(db)
        await _decide(manager, decisions)
        resume = _resume_openai if framework == "openai" else _resume_pydantic
        try:
            result = {**await resume(manager, saved), "calls": CALLS, "seen": SEEN}
        except ConcurrencyError as exc:
            result = {"conflict": str(exc), "calls": CALLS}
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    saved = Path(sys.argv[2]).read_text(encoding="utf-8")
    framework = sys.argv[4] if len(sys.argv) > 4 else "openai"
    asyncio.run(main(sys.argv[1], saved, json.loads(sys.argv[3]), framework))
