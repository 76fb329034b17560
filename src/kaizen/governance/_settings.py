"""Shared approval settings: stored policies and delegations, with their audit trail.

What one instance configures here every instance reads, so ``serve``, ``maintain``,
the CLI and any number of app processes route and authorize alike. Every change
is an event in a hash chain per subject (``policy:<agent>``, ``delegation:<approver>``)
recording who, when, and the value before and after; the change and its event
commit together or not at all. Values are plain JSON (the manager converts
requirements); no rule lives here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from dataflow import DataFlow, DuplicateKeyError, Index, Related, Step, WriteBatch
from dataflow.errors import ConcurrencyError
from dataflow.transactions import Transaction
from dataflow.values import utcnow
from kaizen.governance._schema import audit_from_row, register_models
from kaizen.governance.audit import GENESIS, canonical, check_links, make_event
from kaizen.governance.models import AuditEvent, AuditProblem, AuditReport, Delegation

__all__ = ["InMemorySettings", "SettingsStorage", "subject"]

POLICY_TABLE = "external_agent_approval_policy"
DELEGATION_TABLE = "external_agent_approval_delegation"
SETTINGS_AUDIT_TABLE = "external_agent_approval_settings_audit"
_ATTEMPTS = 20


class ApprovalPolicyRecord:
    """A row of ``external_agent_approval_policy``: one agent's stored requirement."""

    id: str  # the external agent id
    requirement_json: dict[str, Any]
    updated_by: str


class ApprovalDelegationRecord:
    """A row of ``external_agent_approval_delegation``: the delegate votes for the approver."""

    id: str
    approver_id: str
    delegate_id: str
    until: datetime | None = None
    created_by: str


class ApprovalSettingsAuditRecord:
    """A row of ``external_agent_approval_settings_audit``: append-only, hash-chained."""

    id: str
    kind: str
    subject: str
    seq: int
    event: str
    actor: str
    occurred_at: datetime
    details: str
    prev_hash: str
    hash: str


def subject(kind: str, key: str) -> str:
    """The chain name of a settings subject: ``policy:<agent>`` or ``delegation:<approver>``."""
    return f"{kind}:{key}"


def _delegation_id(approver_id: str, delegate_id: str) -> str:
    return hashlib.sha256(canonical([approver_id, delegate_id]).encode()).hexdigest()


def _delegation(row: dict[str, Any]) -> Delegation:
    return Delegation(
        row["approver_id"], row["delegate_id"], row["until"], row["created_at"], row["created_by"]
    )


class SettingsStorage:
    """Policies and delegations stored through DataFlow (three tables)."""

    def __init__(self, db: DataFlow) -> None:
        self.db = db
        register_models(
            db,
            (
                (ApprovalPolicyRecord, POLICY_TABLE, []),
                (
                    ApprovalDelegationRecord,
                    DELEGATION_TABLE,
                    [Index("approver_id", "delegate_id", unique=True), Index("delegate_id")],
                ),
                (
                    ApprovalSettingsAuditRecord,
                    SETTINGS_AUDIT_TABLE,
                    [Index("kind", "subject", "seq", unique=True)],
                ),
            ),
        )
        self._pol = ApprovalPolicyRecord.__name__
        self._del = ApprovalDelegationRecord.__name__
        self._aud = ApprovalSettingsAuditRecord.__name__

    async def _audited(
        self,
        kind: str,
        key: str,
        event: str,
        actor: str,
        read: Callable[[], Awaitable[Any]],
        write: Callable[[Transaction, Any], Awaitable[dict[str, Any] | None]],
    ) -> Any:
        """Run ``write`` and append its event to the subject's chain, atomically.

        The chain's next seq is unique: of concurrent writers one commits, the
        others read again (``read`` gives the value before) and try once more.
        ``write`` returns the event's details, or None for "nothing to change".
        """
        for _ in range(_ATTEMPTS):
            last = await self.db.select(
                self._aud, {"kind": kind, "subject": key}, order_by="-seq", limit=1
            )
            before = await read()  # after the chain head: a change in between conflicts
            seq, prev = (last[0]["seq"] + 1, last[0]["hash"]) if last else (0, GENESIS)
            try:
                async with self.db.transaction() as tx:
                    details = await write(tx, before)
                    if details is None:
                        return before
                    made = make_event(
                        subject(kind, key), seq, event, actor, utcnow(), details, prev
                    )
                    await tx.insert(self._aud, _audit_row(kind, key, made))
                return before
            except DuplicateKeyError:
                continue
        raise ConcurrencyError(f"{subject(kind, key)} keeps changing; not saved")

    # -- policies ----------------------------------------------------------

    async def get_policy(self, agent: str) -> dict[str, Any] | None:
        """The stored requirement (as JSON) of ``agent``, or None."""
        row = await self.db.get(self._pol, agent)
        return dict(row["requirement_json"]) if row is not None else None

    async def policies(self) -> dict[str, dict[str, Any]]:
        """Every stored requirement by agent id, in id order."""
        rows = await self.db.select(self._pol, {}, order_by="id")
        return {r["id"]: dict(r["requirement_json"]) for r in rows}

    async def save_policy(self, agent: str, policy: dict[str, Any], actor: str) -> None:
        """Store ``policy`` for ``agent`` (replacing any), audited with before/after."""

        async def write(tx: Transaction, before: Any) -> dict[str, Any] | None:
            await tx.upsert(
                self._pol, {"id": agent, "requirement_json": policy, "updated_by": actor}
            )
            return {"before": before, "after": policy}

        await self._audited(
            "policy", agent, "policy_set", actor, lambda: self.get_policy(agent), write
        )

    async def delete_policy(self, agent: str, actor: str) -> bool:
        """Delete ``agent``'s stored policy; return whether there was one."""

        async def write(tx: Transaction, before: Any) -> dict[str, Any] | None:
            if before is None or not await tx.delete_where(self._pol, {"id": agent}):
                return None
            return {"before": before, "after": None}

        before = await self._audited(
            "policy", agent, "policy_deleted", actor, lambda: self.get_policy(agent), write
        )
        return before is not None

    # -- delegations -------------------------------------------------------

    async def delegations(
        self, *, approver: str | None = None, delegate: str | None = None
    ) -> list[Delegation]:
        """Stored delegations (expired ones included), filtered by either side."""
        filt: dict[str, Any] = {}
        if approver is not None:
            filt["approver_id"] = approver
        if delegate is not None:
            filt["delegate_id"] = delegate
        rows = await self.db.select(self._del, filt, order_by=["approver_id", "delegate_id"])
        return [_delegation(r) for r in rows]

    def delegations_to(self, delegate: str) -> Related:
        """The stored delegations to ``delegate`` (expired ones included), as the
        related read of a ``get_with``; :meth:`delegations_of` reads its rows."""
        return Related(self._del, {"delegate_id": delegate}, order_by=["approver_id"])

    @staticmethod
    def delegations_of(rows: list[dict[str, Any]]) -> list[Delegation]:
        """The delegations of rows read by :meth:`delegations_to`."""
        return [_delegation(r) for r in rows]

    def hold(self, batch: WriteBatch, delegation: Delegation, now: datetime) -> Step:
        """A step of ``batch`` locking ``delegation``'s row if it is still stored and
        active at ``now`` (matching nothing if it is not: revoked, ended). A revoke
        then waits for the batch; the batch's later steps are guarded by it."""
        key = _delegation_id(delegation.approver_id, delegation.delegate_id)
        active = [{"until": {"$null": True}}, {"until": {"$gt": now}}]
        touch = {"approver_id": delegation.approver_id}  # the same value: a row lock
        return batch.update_where(self._del, {"id": key, "$or": active}, touch)

    async def _one(self, approver: str, delegate: str) -> Delegation | None:
        row = await self.db.get(self._del, _delegation_id(approver, delegate))
        return _delegation(row) if row is not None else None

    async def save_delegation(self, delegation: Delegation) -> None:
        """Store ``delegation`` (replacing one between the same two people)."""
        approver, delegate = delegation.approver_id, delegation.delegate_id

        async def write(tx: Transaction, before: Any) -> dict[str, Any] | None:
            row = {
                "id": _delegation_id(approver, delegate),
                "approver_id": approver,
                "delegate_id": delegate,
                "until": delegation.until,
                "created_by": delegation.created_by,
                "created_at": delegation.created_at,  # the time the manager returned
            }
            await tx.upsert(self._del, row)
            return {"delegate_id": delegate, "before": _until(before), "until": _until(delegation)}

        await self._audited(
            "delegation",
            approver,
            "delegated",
            delegation.created_by,
            lambda: self._one(approver, delegate),
            write,
        )

    async def delete_delegation(self, approver: str, delegate: str, actor: str) -> bool:
        """Revoke ``delegate``'s delegation from ``approver``; return whether it existed."""

        async def write(tx: Transaction, before: Any) -> dict[str, Any] | None:
            key = _delegation_id(approver, delegate)
            if before is None or not await tx.delete_where(self._del, {"id": key}):
                return None
            return {"delegate_id": delegate, "before": _until(before), "until": None}

        before = await self._audited(
            "delegation",
            approver,
            "delegation_revoked",
            actor,
            lambda: self._one(approver, delegate),
            write,
        )
        return before is not None

    async def history(self, kind: str, key: str) -> list[AuditEvent]:
        """The audit trail of one policy or one approver's delegations, oldest first."""
        rows = await self.db.select(self._aud, {"kind": kind, "subject": key}, order_by="seq")
        return [audit_from_row({**r, "request_id": subject(kind, key)})[0] for r in rows]

    async def verify(self, report: AuditReport) -> None:
        """Check every settings chain (an edited, inserted or removed event) and the
        stored policies and delegations against them, into ``report``."""
        order = ["kind", "subject", "seq"]
        events: list[tuple[AuditEvent, str]] = []
        offset = 0
        while True:
            rows = await self.db.select(self._aud, {}, order_by=order, limit=500, offset=offset)
            for r in rows:
                events.append(audit_from_row({**r, "request_id": subject(r["kind"], r["subject"])}))
            if len(rows) < 500:
                break
            offset += len(rows)
        await _verify(self, events, report)


async def _verify(
    store: SettingsStorage | InMemorySettings,
    events: list[tuple[AuditEvent, str]],
    report: AuditReport,
) -> None:
    """Check every settings chain in ``events`` (ordered by subject, then seq), and that
    the stored policies and delegations are what their chains say."""
    chains: dict[str, list[tuple[AuditEvent, str]]] = {}
    for item in events:
        chains.setdefault(item[0].request_id, []).append(item)
    expected: dict[str, Any] = {}
    for name, chain in chains.items():
        report.events += len(chain)
        if check_links(name, chain, report.problems):
            expected[name] = _fold(name, [e for e, _ in chain])
    actual: dict[str, Any] = {subject("policy", a): p for a, p in (await store.policies()).items()}
    for d in await store.delegations():
        key = subject("delegation", d.approver_id)
        actual.setdefault(key, {})[d.delegate_id] = _until(d)
    for name in sorted(set(expected) | set(actual)):
        if name in chains and name not in expected:
            continue  # a broken chain is the problem already reported
        found = actual.get(name, None if name.startswith("policy:") else {})
        if canonical(found) != canonical(expected.get(name)):
            message = f"stored {name.split(':')[0]} differs from its audit trail"
            report.problems.append(AuditProblem(name, None, message))


def _fold(name: str, events: list[AuditEvent]) -> Any:
    """What a chain says is stored: a policy (None: none), or delegate -> until marker."""
    if name.startswith("policy:"):
        return events[-1].details.get("after") if events else None
    state: dict[str, Any] = {}
    for event in events:
        delegate, until = str(event.details.get("delegate_id")), event.details.get("until")
        if until is None:
            state.pop(delegate, None)
        else:
            state[delegate] = until
    return state


def _until(delegation: Delegation | None) -> Any:
    """How an event records a delegation: absent (None), or its end ("" for none)."""
    if delegation is None:
        return None
    return delegation.until.isoformat() if delegation.until is not None else ""


def _audit_row(kind: str, key: str, event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.hash,
        "kind": kind,
        "subject": key,
        "seq": event.seq,
        "event": event.event,
        "actor": event.actor,
        "occurred_at": event.occurred_at,
        "details": canonical(event.details),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


class InMemorySettings:
    """Policies and delegations in this process's memory (the in-memory store's)."""

    def __init__(self) -> None:
        self._policies: dict[str, dict[str, Any]] = {}
        self._delegations: dict[tuple[str, str], Delegation] = {}
        self._events: dict[tuple[str, str], list[AuditEvent]] = {}

    def _append(self, kind: str, key: str, event: str, actor: str, details: Any) -> None:
        chain = self._events.setdefault((kind, key), [])
        prev = chain[-1].hash if chain else GENESIS
        chain.append(
            make_event(subject(kind, key), len(chain), event, actor, utcnow(), details, prev)
        )

    async def get_policy(self, agent: str) -> dict[str, Any] | None:
        """See :meth:`SettingsStorage.get_policy`."""
        found = self._policies.get(agent)
        return dict(found) if found is not None else None

    async def policies(self) -> dict[str, dict[str, Any]]:
        """See :meth:`SettingsStorage.policies`."""
        return {k: dict(self._policies[k]) for k in sorted(self._policies)}

    async def save_policy(self, agent: str, policy: dict[str, Any], actor: str) -> None:
        """See :meth:`SettingsStorage.save_policy`."""
        before = self._policies.get(agent)
        self._policies[agent] = dict(policy)
        self._append("policy", agent, "policy_set", actor, {"before": before, "after": policy})

    async def delete_policy(self, agent: str, actor: str) -> bool:
        """See :meth:`SettingsStorage.delete_policy`."""
        before = self._policies.pop(agent, None)
        if before is None:
            return False
        self._append("policy", agent, "policy_deleted", actor, {"before": before, "after": None})
        return True

    def holds(self, delegation: Delegation, now: datetime) -> bool:
        """Whether ``delegation`` is still stored and active at ``now``."""
        found = self._delegations.get((delegation.approver_id, delegation.delegate_id))
        return found is not None and found.active(now)

    async def delegations(
        self, *, approver: str | None = None, delegate: str | None = None
    ) -> list[Delegation]:
        """See :meth:`SettingsStorage.delegations`."""
        return [
            d
            for (a, t), d in sorted(self._delegations.items())
            if (approver is None or a == approver) and (delegate is None or t == delegate)
        ]

    async def save_delegation(self, delegation: Delegation) -> None:
        """See :meth:`SettingsStorage.save_delegation`."""
        key = (delegation.approver_id, delegation.delegate_id)
        before = self._delegations.get(key)
        self._delegations[key] = delegation
        details = {
            "delegate_id": delegation.delegate_id,
            "before": _until(before),
            "until": _until(delegation),
        }
        self._append("delegation", key[0], "delegated", delegation.created_by, details)

    async def delete_delegation(self, approver: str, delegate: str, actor: str) -> bool:
        """See :meth:`SettingsStorage.delete_delegation`."""
        before = self._delegations.pop((approver, delegate), None)
        if before is None:
            return False
        details = {"delegate_id": delegate, "before": _until(before), "until": None}
        self._append("delegation", approver, "delegation_revoked", actor, details)
        return True

    async def history(self, kind: str, key: str) -> list[AuditEvent]:
        """See :meth:`SettingsStorage.history`."""
        return list(self._events.get((kind, key), []))

    async def verify(self, report: AuditReport) -> None:
        """See :meth:`SettingsStorage.verify`."""
        events = [
            (e, canonical(e.details)) for key in sorted(self._events) for e in self._events[key]
        ]
        await _verify(self, events, report)
