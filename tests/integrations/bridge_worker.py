"""Another app instance for the bridge tests: decides requests, then resumes a paused
OpenAI Agents SDK run from its stored JSON with objects of its own.

Run as ``python bridge_worker.py DATABASE_URL PENDING_RUN_FILE DECISIONS_JSON``; each
decision is ``{"id", "approve": true, "metadata"?}`` or ``{"id", "reason"}``. Prints
``{"result": {...}}``: what the tools received, what the model saw, how the run ended.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bridge_support import APPROVERS, CALLS, REQUESTER, SEEN, make_manager, openai_agent

from dataflow import DataFlow
from kaizen.integrations.openai_agents import OpenAIAgentsApprovals, PendingRun


async def main(url: str, saved: str, decisions: list[dict[str, object]]) -> None:
    async with DataFlow(url) as db:
        manager = make_manager(db)
        for decision in decisions:
            request_id = str(decision["id"])
            if decision.get("approve"):
                edited = decision.get("metadata")
                assert edited is None or isinstance(edited, dict)
                await manager.approve_request(request_id, APPROVERS[0], metadata=edited)
            else:
                await manager.reject_request(request_id, APPROVERS[1], str(decision["reason"]))
        bridge = OpenAIAgentsApprovals(
            manager, external_agent_id="support-bot", requested_by=REQUESTER
        )
        pending = PendingRun.from_json(saved)
        outcome = await bridge.resume(openai_agent(turns=2), pending)
        assert outcome.result is not None
        result = {
            "calls": CALLS,
            "seen": SEEN,
            "final": outcome.result.final_output,
            "paused": outcome.pending is not None,
            "decisions": [[d.tool_name, d.status.value, d.edited] for d in outcome.decisions],
        }
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    saved = Path(sys.argv[2]).read_text(encoding="utf-8")
    asyncio.run(main(sys.argv[1], saved, json.loads(sys.argv[3])))
