"""Generated vote sequences on quorum requests: whatever the order, the request ends as
its recorded votes say, nobody counts twice, refusals change nothing, the trail verifies.

Runs in memory (the rules are the policy's, the same for every store; the database
stores are held to the same contract by tests/governance and the process races).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prop_settings import SETTINGS

from kaizen.governance import (
    AlreadyDecidedError,
    AlreadyVotedError,
    ApprovalStatus,
    ExternalAgentApprovalManager,
    GovernanceError,
    policy,
)

APPROVERS = ["ana", "bo", "cy"]
#: Who tries to vote: the approvers, a delegate of bo (and of cy, sometimes), the requester,
#: a stranger.
VOTERS = [*APPROVERS, "dee", "dev", "zed"]
VERSIONS = [None, {"n": 1}, {"n": 1.0, "x": True}, {"n": 2}]
ACTION = st.tuples(
    st.sampled_from(VOTERS),
    st.sampled_from(["approve", "approve", "reject"]),
    st.sampled_from(range(len(VERSIONS))),
    st.sampled_from([None, "bo", "cy"]),
)
SEEN: Counter[str] = Counter()


def _key(metadata: Any) -> Any:
    """A version as the policy compares them (JSON values: 1 is 1.0)."""
    if metadata is None:
        return None
    return tuple(
        sorted((k, float(v) if not isinstance(v, bool) else v) for k, v in metadata.items())
    )


async def _play(quorum: int, both: bool, actions: list[tuple[str, str, int, str | None]]) -> None:
    m = ExternalAgentApprovalManager()
    m.set_approvers("agent", APPROVERS, quorum=quorum)
    await m.delegate("bo", to="dee")
    if both:
        await m.delegate("cy", to="dee")
    rid = await m.request_approval("agent", "dev", {"n": 1})
    for voter, decision, version, behalf in actions:
        before = await m.get_audit_trail(rid)
        try:
            if decision == "approve":
                await m.approve_request(rid, voter, metadata=VERSIONS[version], on_behalf_of=behalf)
            else:
                await m.reject_request(rid, voter, "no", on_behalf_of=behalf)
            SEEN["recorded"] += 1
        except AlreadyVotedError:
            SEEN["already_voted"] += 1
            assert await m.get_audit_trail(rid) == before
        except AlreadyDecidedError:
            SEEN["already_decided"] += 1
            request = await m.get_request(rid)
            assert request is not None and request.status is not ApprovalStatus.PENDING
            assert await m.get_audit_trail(rid) == before
        except GovernanceError:  # not an approver, their own request, not their delegate
            SEEN["refused"] += 1
            assert await m.get_audit_trail(rid) == before
    request = await m.get_request(rid)
    assert request is not None
    votes = request.votes
    # One vote per person and per approver; only eligible approvers are counted.
    assert len({v.approver_id for v in votes}) == len(votes)
    assert len({v.counts_for for v in votes}) == len(votes)
    assert {v.counts_for for v in votes} <= set(APPROVERS)
    assert all(v.on_behalf_of is None or v.approver_id == "dee" for v in votes)
    # The status is what the votes, in order, say.
    tally: Counter[Any] = Counter()
    expected = ApprovalStatus.PENDING
    for i, vote in enumerate(votes):
        assert expected is ApprovalStatus.PENDING, "a vote after the decision"
        if vote.decision == "reject":
            expected = ApprovalStatus.REJECTED
        else:
            tally[_key(vote.metadata)] += 1
            if tally[_key(vote.metadata)] == quorum:
                expected = ApprovalStatus.APPROVED
        assert i == 0 or votes[i - 1].at <= vote.at
    assert request.status is expected
    if expected is ApprovalStatus.APPROVED:
        assert request.approved_by == votes[-1].approver_id
        assert request.approved_metadata == votes[-1].metadata
        assert str(policy.progress(request)) == f"{quorum} of {quorum}"
    names = [e.event for e in await m.get_audit_trail(rid)]
    decided = expected is not ApprovalStatus.PENDING
    assert names == ["requested", *["voted"] * (len(votes) - decided)] + (
        [{"approved": "approved", "rejected": "rejected"}[expected.value]] if decided else []
    )
    assert (await m.verify_audit()).ok
    SEEN[expected.value] += 1


@SETTINGS
@given(
    quorum=st.integers(1, 3),
    both=st.booleans(),
    actions=st.lists(ACTION, min_size=1, max_size=10),
)
def test_any_vote_sequence_ends_as_its_votes_say(
    quorum: int, both: bool, actions: list[tuple[str, str, int, str | None]]
) -> None:
    asyncio.run(_play(quorum, both, actions))


def test_the_generated_sequences_reach_every_outcome() -> None:
    # Runs after the property (file order): each kind of answer and ending was exercised.
    if not SEEN:
        test_any_vote_sequence_ends_as_its_votes_say()
    for outcome in ("recorded", "already_voted", "already_decided", "refused"):
        assert SEEN[outcome] > 0, SEEN
    for status in ("pending", "approved", "rejected"):
        assert SEEN[status] > 0, SEEN
