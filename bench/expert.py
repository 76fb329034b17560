"""The baseline an expert would write: each write operation by hand, on the raw driver.

Same semantics as ours, in the fewest round trips the protocol allows, with SQL
written for the job (not our statements replayed):

- approval save: the request and its ``requested`` audit event, atomically;
- update / decisions / votes: read the request once (a decision needs its
  state), then one compare-and-set on the audit seq carrying the audit event,
  the vote and the NOTIFY; a delegate's vote also locks its delegation row;
- the timeout sweep: read the overdue requests, then time them all out at once;
- sessions: an upsert; an atomic shallow merge of state keys; a bounded delete.

PostgreSQL: one statement per write (data-modifying CTEs). MySQL/MariaDB: one
multi-statement transaction sent at once (the connection allows multi-statements,
as ours). The values are built as an expert would build them: JSON text with
``json.dumps``, the hash chain with ``hashlib``. Each function takes the raw
connection and the same argument as our call, and leaves the same rows (the
operation's teardown removes them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["EXPERTS"]

Expert = Callable[[Any, Any], Awaitable[Any]]

REQ = "external_agent_approval_request"
AUD = "external_agent_approval_audit"
VOTE = "external_agent_approval_vote"
SIDE = "external_agent_approval_request__approvers_json"
DELEG = "external_agent_approval_delegation"
SESS = "cross_channel_session"
CHANNEL = "kaizen_approval_decided"
APPROVER, DEPUTY = "lead-bench", "deputy-bench"

REQ_COLS = (
    "id, external_agent_id, requested_by, approvers_json, status, approval_reason, "
    "request_metadata_json, approved_at, approved_by, rejection_reason, deadline_at, "
    "audit_seq, audit_head, quorum, policy_json, escalations, approved_metadata_json, "
    "created_at, updated_at"
)
AUD_COLS = (
    "id, request_id, seq, event, actor, occurred_at, details, prev_hash, hash, created_at, "
    "updated_at"
)
VOTE_COLS = (
    "id, request_id, seq, approver_id, counts_for, on_behalf_of, decision, voted_at, "
    "comment, metadata_json, created_at, updated_at"
)
SESS_COLS = (
    "id, user_id, session_created_at, last_accessed, expires_at, ttl_seconds, state_json, "
    "channel_activity_json, memory_pool_id, created_at, updated_at"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _event(
    rid: str, seq: int, name: str, actor: str, at: datetime, details: Any, prev: str
) -> list[Any]:
    """An audit row (the AUD_COLS values): its hash chains onto ``prev``."""
    text = _dumps(details)
    digest = hashlib.sha256(_dumps([rid, seq, name, actor, at.isoformat(), text, prev]).encode())
    head = digest.hexdigest()
    return [head, rid, seq, name, actor, at, text, prev, head, at, at]


def _marks(n: int, start: int, pg: bool) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n)) if pg else ", ".join(["%s"] * n)


def _dt(value: datetime | None, pg: bool) -> datetime | None:
    """asyncpg takes aware datetimes; MySQL's DATETIME holds naive UTC."""
    if value is None or pg:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _now() -> datetime:
    return datetime.now(UTC)


# -- approvals --------------------------------------------------------------


def _request_values(r: Any, pg: bool, now: datetime, head: str) -> list[Any]:
    policy = {
        "escalate_to": list(r.escalate_to),
        "timeout_seconds": r.timeout_seconds,
        "excluded_approvers": list(r.excluded_approvers),
    }
    return [
        r.id, r.external_agent_id, r.requested_by, _dumps(list(r.approvers)), r.status.value,
        r.approval_reason, _dumps(r.request_metadata), None, None, None,
        _dt(r.deadline_at, pg), 0, head, r.quorum, _dumps(policy), r.escalations, None,
        _dt(r.created_at or now, pg), _dt(now, pg),
    ]  # fmt: skip


async def _run(conn: Any, pg: bool, sql: str, args: list[Any]) -> Any:
    """One round trip: a statement (asyncpg) or a multi-statement script (asyncmy)."""
    if pg:
        return await conn.fetch(sql, *args)
    async with conn.cursor() as cur:
        await cur.execute(sql, args)
        rows: Any = None
        while True:
            if cur.description:
                rows = await cur.fetchall()
            if not await cur.nextset():
                return rows


async def _fetch_one(conn: Any, pg: bool, sql: str, args: list[Any]) -> Any:
    if pg:
        return await conn.fetchrow(sql, *args)
    async with conn.cursor() as cur:
        await cur.execute(sql, args)
        return await cur.fetchone()


def save(pg: bool) -> Expert:
    async def run(conn: Any, r: Any) -> None:
        now = _now()
        details = {"request": {"agent": r.external_agent_id, "approvers": list(r.approvers)}}
        audit = _event(r.id, 0, "requested", r.requested_by, now, details, "0" * 64)
        req = _request_values(r, pg, now, audit[0])
        audit[5] = audit[9] = audit[10] = _dt(now, pg)
        if pg:
            sql = (
                f"WITH r AS (INSERT INTO {REQ} ({REQ_COLS}) VALUES ({_marks(19, 1, pg)})) "
                f"INSERT INTO {AUD} ({AUD_COLS}) VALUES ({_marks(11, 20, pg)})"
            )
            await conn.execute(sql, *req, *audit)
            return
        sides = [v for a in dict.fromkeys(r.approvers) for v in (r.id, json.dumps(a))]
        script = (
            f"START TRANSACTION; INSERT INTO {REQ} ({REQ_COLS}) VALUES ({_marks(19, 1, pg)}); "
            f"INSERT INTO {SIDE} (owner_id, value) VALUES "
            + ", ".join(["(%s, %s)"] * (len(sides) // 2))
            + f"; INSERT INTO {AUD} ({AUD_COLS}) VALUES ({_marks(11, 1, pg)}); COMMIT"
        )
        await _run(conn, pg, script, [*req, *sides, *audit])

    return run


def _state_sql(pg: bool, columns: str) -> str:
    where = "id = $1" if pg else "id = %s"
    return f"SELECT {columns} FROM {REQ} WHERE {where}"


def _cas(
    pg: bool,
    sets: dict[str, Any],
    rid: str,
    seq: int,
    inserts: list[tuple[str, str, list[Any]]],
    *,
    notify: bool,
    lock: list[Any] | None = None,
    sides: list[str] | None = None,
) -> tuple[str, list[Any]]:
    """One compare-and-set write: the update (if the request is still at ``seq``; with
    ``lock``, if the delegation row is still active, locked), the rows it entails."""
    names = list(sets)
    args: list[Any] = list(sets.values())
    if pg:
        n = len(args)
        ctes = []
        guard = ""
        if lock is not None:
            ctes.append(
                f"d AS (UPDATE {DELEG} SET approver_id = approver_id WHERE approver_id = ${n + 1} "
                f"AND delegate_id = ${n + 2} AND (until IS NULL OR until > ${n + 3}) RETURNING 1)"
            )
            args += lock
            n += 3
            guard = " AND EXISTS (SELECT 1 FROM d)"
        assign = ", ".join(f"{c} = ${i + 1}" for i, c in enumerate(names))
        ctes.append(
            f"u AS (UPDATE {REQ} SET {assign} WHERE id = ${n + 1} AND audit_seq = ${n + 2}"
            f"{guard} RETURNING id)"
        )
        args += [rid, seq]
        n += 2
        for k, (table, cols, values) in enumerate(inserts):
            ctes.append(
                f"i{k} AS (INSERT INTO {table} ({cols}) "
                f"SELECT {_marks(len(values), n + 1, pg)} FROM u)"
            )
            args += values
            n += len(values)
        tail = f"pg_notify('{CHANNEL}', id)" if notify else "id"
        return f"WITH {', '.join(ctes)} SELECT {tail} FROM u", args
    parts = ["START TRANSACTION"]
    guard = ""
    if lock is not None:
        parts += [
            f"UPDATE {DELEG} SET approver_id = approver_id WHERE approver_id = %s "
            "AND delegate_id = %s AND (until IS NULL OR until > %s)",
            "SET @held = ROW_COUNT()",
        ]
        args = [*lock, *args]
        guard = " AND @held > 0"
    assign = ", ".join(f"{c} = %s" for c in names)
    parts += [
        f"UPDATE {REQ} SET {assign} WHERE id = %s AND audit_seq = %s{guard}",
        "SET @n = ROW_COUNT()",
    ]
    args += [rid, seq]
    if sides is not None:
        parts.append(f"DELETE FROM {SIDE} WHERE owner_id = %s AND @n > 0")
        args.append(rid)
        for value in sides:
            parts.append(
                f"INSERT INTO {SIDE} (owner_id, value) SELECT %s, %s FROM DUAL WHERE @n > 0"
            )
            args += [rid, value]
    for table, cols, values in inserts:
        parts.append(
            f"INSERT INTO {table} ({cols}) "
            f"SELECT {_marks(len(values), 1, pg)} FROM DUAL WHERE @n > 0"
        )
        args += values
    parts += ["COMMIT", "SELECT @n"]
    return "; ".join(parts), args


def update(pg: bool) -> Expert:
    async def run(conn: Any, pair: Any) -> None:
        _, r = pair
        seq, head = await _fetch_one(conn, pg, _state_sql(pg, "audit_seq, audit_head"), [r.id])
        now = _now()
        details = {"set": {"reason": r.approval_reason, "metadata": r.request_metadata}}
        audit = _event(r.id, seq + 1, "updated", "system", now, details, head)
        audit[5] = audit[9] = audit[10] = _dt(now, pg)
        values = _request_values(r, pg, now, audit[0])
        columns = [c.strip() for c in REQ_COLS.split(",")]
        sets = dict(zip(columns[1:], values[1:], strict=True))
        del sets["created_at"]
        sets.update(audit_seq=seq + 1)
        sides = None if pg else [json.dumps(a) for a in dict.fromkeys(r.approvers)]
        sql, args = _cas(pg, sets, r.id, seq, [(AUD, AUD_COLS, audit)], notify=True, sides=sides)
        if not await _run(conn, pg, sql, args):
            raise RuntimeError("expert update: changed concurrently")

    return run


def vote(pg: bool, *, voter: str, decides: bool) -> Expert:
    """A vote: with ``decides``, the approving decision of a single approver (or, voter
    being the deputy, of the approver who delegated to them); else the first vote of
    a quorum-2 request."""

    async def run(conn: Any, r: Any) -> None:
        now = _now()
        delegated = voter == DEPUTY
        columns = "status, approvers_json, requested_by, audit_seq, audit_head, quorum"
        if delegated:  # the request and the voter's active delegations, read together
            p = ("$2", "$3") if pg else ("%s", "%s")
            columns += (
                f", (SELECT count(*) FROM {DELEG} WHERE delegate_id = {p[0]} AND "
                f"approver_id = '{APPROVER}' AND (until IS NULL OR until > {p[1]}))"
            )
        else:  # and its approvals so far
            columns += f", (SELECT count(*) FROM {VOTE} WHERE request_id = {REQ}.id)"
        if delegated:  # MySQL's placeholders are positional: the subquery's come first
            args = [r.id, voter, _dt(now, pg)] if pg else [voter, _dt(now, pg), r.id]
        else:
            args = [r.id]
        row = await _fetch_one(conn, pg, _state_sql(pg, columns), args)
        status, approvers, requester, seq, head, quorum, extra = row
        eligible = json.loads(approvers) if isinstance(approvers, str) else approvers
        counts_for = APPROVER if delegated else voter
        if status != "pending" or counts_for not in eligible or counts_for == requester:
            raise RuntimeError("expert vote: may not vote")
        if delegated and not extra:
            raise RuntimeError("expert vote: no delegation")
        final = decides or (extra or 0) + 1 >= (quorum or 1)
        name = "approved" if final else "voted"
        vote_json = {
            "approver_id": voter,
            "decision": "approve",
            "on_behalf_of": counts_for if delegated else None,
        }
        audit = _event(r.id, seq + 1, name, voter, now, {"vote": vote_json}, head)
        audit[5] = audit[9] = audit[10] = _dt(now, pg)
        vote_row = [
            audit[0], r.id, seq + 1, voter, counts_for, counts_for if delegated else None,
            "approve", _dt(now, pg), None, None, _dt(now, pg), _dt(now, pg),
        ]  # fmt: skip
        sets: dict[str, Any] = {
            "audit_seq": seq + 1,
            "audit_head": audit[0],
            "updated_at": _dt(now, pg),
        }
        if final:
            sets.update(status="approved", approved_by=counts_for, approved_at=_dt(now, pg))
        lock = [APPROVER, DEPUTY, _dt(now, pg)] if delegated else None
        inserts = [(AUD, AUD_COLS, audit), (VOTE, VOTE_COLS, vote_row)]
        sql, args = _cas(pg, sets, r.id, seq, inserts, notify=final, lock=lock)
        if not await _run(conn, pg, sql, args):
            raise RuntimeError("expert vote: changed concurrently")

    return run


def sweep(pg: bool) -> Expert:
    async def run(conn: Any, ids: list[str]) -> int:
        now = _now()
        where = (
            "status = 'pending' AND deadline_at <= $1 ORDER BY deadline_at, id LIMIT 200"
            if pg
            else "status = 'pending' AND deadline_at <= %s ORDER BY deadline_at, id LIMIT 200"
        )
        sql = f"SELECT id, audit_seq, audit_head FROM {REQ} WHERE {where}"
        if pg:
            found = await conn.fetch(sql, now)
        else:
            async with conn.cursor() as cur:
                await cur.execute(sql, [_dt(now, pg)])
                found = await cur.fetchall()
        events = [
            _event(rid, seq + 1, "timed_out", "system", now, {"set": {"status": "timeout"}}, head)
            for rid, seq, head in found
        ]
        if not events:
            return 0
        if pg:
            cols = list(
                zip(*[(e[1], e[2] - 1, e[2], e[0], e[6], e[7]) for e in events], strict=True)
            )
            script = (
                "WITH v AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], "
                "$4::text[], $5::text[], $6::text[]) "
                "AS v(id, prev, seq, head, details, prev_hash)), "
                f"u AS (UPDATE {REQ} SET status = 'timeout', approved_at = $7, audit_seq = v.seq, "
                f"audit_head = v.head, updated_at = $7 FROM v WHERE {REQ}.id = v.id AND "
                f"{REQ}.audit_seq = v.prev RETURNING {REQ}.id), "
                f"a AS (INSERT INTO {AUD} ({AUD_COLS}) SELECT v.head, v.id, v.seq, 'timed_out', "
                "'system', $7, v.details, v.prev_hash, v.head, $7, $7 "
                "FROM v JOIN u ON u.id = v.id) "
                f"SELECT count(*), pg_notify('{CHANNEL}', '*') FROM u"
            )
            rows = await conn.fetch(script, *[list(c) for c in cols], now)
            return int(rows[0][0])
        parts, args = ["START TRANSACTION"], []
        at = _dt(now, pg)
        for i, e in enumerate(events):
            parts += [
                f"UPDATE {REQ} SET status = 'timeout', approved_at = %s, audit_seq = %s, "
                "audit_head = %s, updated_at = %s WHERE id = %s AND audit_seq = %s",
                f"SET @n{i} = ROW_COUNT()",
                f"INSERT INTO {AUD} ({AUD_COLS}) "
                f"SELECT {_marks(11, 1, pg)} FROM DUAL WHERE @n{i} > 0",
            ]
            e[5] = e[9] = e[10] = at
            args += [at, e[2], e[0], at, e[1], e[2] - 1, *e]
        parts += ["COMMIT", "SELECT " + " + ".join(f"@n{i}" for i in range(len(events)))]
        rows = await _run(conn, pg, "; ".join(parts), args)
        return int(rows[0][0])

    return run


# -- sessions ---------------------------------------------------------------


def session_save(pg: bool) -> Expert:
    async def run(conn: Any, s: Any) -> None:
        now = _now()
        values = [
            s.session_id, s.user_id, _dt(s.created_at, pg), _dt(s.last_accessed, pg),
            _dt(s.expires_at, pg), int(s.ttl.total_seconds()), _dumps(s.state),
            _dumps({k: v.isoformat() for k, v in s.channel_activity.items()}), s.memory_pool_id,
            _dt(now, pg), _dt(now, pg),
        ]  # fmt: skip
        changed = [c.strip() for c in SESS_COLS.split(",")][1:]
        changed.remove("created_at")
        if pg:
            assign = ", ".join(f"{c} = excluded.{c}" for c in changed)
            sql = (
                f"INSERT INTO {SESS} ({SESS_COLS}) VALUES ({_marks(11, 1, pg)}) "
                f"ON CONFLICT (id) DO UPDATE SET {assign}"
            )
            await conn.execute(sql, *values)
            return
        assign = ", ".join(f"{c} = VALUES({c})" for c in changed)
        sql = (
            f"INSERT INTO {SESS} ({SESS_COLS}) VALUES ({_marks(11, 1, pg)}) "
            f"ON DUPLICATE KEY UPDATE {assign}"
        )
        async with conn.cursor() as cur:
            await cur.execute(sql, values)

    return run


def session_merge(pg: bool) -> Expert:
    """The manager's update_session_state on a cached session: merge the keys, note the
    channel, slide the expiry, all in one conditional UPDATE."""

    async def run(conn: Any, i: int) -> None:
        now = _now()
        key, value = f"k{i % 20}", i
        expires = now.timestamp() + 86_400
        at, until = _dt(now, pg), _dt(datetime.fromtimestamp(expires, UTC), pg)
        activity = now.isoformat()
        if pg:
            sql = (
                f"UPDATE {SESS} SET state_json = state_json || $1::jsonb, channel_activity_json "
                "= channel_activity_json || $2::jsonb, last_accessed = $3, expires_at = $4, "
                "updated_at = $3 WHERE id = $5 AND expires_at > $3"
            )
            await conn.execute(
                sql, _dumps({key: value}), _dumps({"api": activity}), at, until, "sess-merge"
            )
            return
        sql = (
            f"UPDATE {SESS} SET state_json = JSON_SET(state_json, %s, %s), "
            "channel_activity_json = JSON_SET(channel_activity_json, '$.api', %s), "
            "last_accessed = %s, expires_at = %s, updated_at = %s WHERE id = %s AND expires_at > %s"
        )
        async with conn.cursor() as cur:
            await cur.execute(sql, [f'$."{key}"', value, activity, at, until, at, "sess-merge", at])

    return run


def session_cleanup(pg: bool) -> Expert:
    async def run(conn: Any, ids: list[str]) -> int:
        now = _now()
        if pg:
            sql = (
                f"DELETE FROM {SESS} WHERE id IN (SELECT id FROM {SESS} "
                "WHERE expires_at <= $1 LIMIT $2)"
            )
            status = await conn.execute(sql, now, 1000)
            return int(status.rpartition(" ")[2])
        async with conn.cursor() as cur:
            return int(
                await cur.execute(
                    f"DELETE FROM {SESS} WHERE expires_at <= %s LIMIT %s", [_dt(now, pg), 1000]
                )
            )

    return run


def _experts(pg: bool) -> dict[str, Expert]:
    return {
        "approvals.save": save(pg),
        "approvals.update": update(pg),
        "approvals.approve": vote(pg, voter=APPROVER, decides=True),
        "approvals.quorum_vote": vote(pg, voter=APPROVER, decides=False),
        "approvals.delegated_vote": vote(pg, voter=DEPUTY, decides=True),
        "approvals.timeout_sweep": sweep(pg),
        "sessions.save": session_save(pg),
        "sessions.update_session_state": session_merge(pg),
        "sessions.cleanup_expired": session_cleanup(pg),
    }


#: Raw driver -> ``group.operation`` -> the expert's version of it.
EXPERTS: dict[str, dict[str, Expert]] = {"asyncpg": _experts(True), "asyncmy": _experts(False)}
