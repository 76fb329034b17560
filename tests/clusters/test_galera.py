"""A 3-node MariaDB Galera cluster (multi-primary): instances on every node at once.

Figures (issue 10): 6 processes x 5 fresh databases set up at once across the
nodes all succeed; 6 x 200 merges of distinct keys into one session across the
nodes keep all 1,200 keys with no error (certification conflicts are retried);
every decision race across the nodes has exactly one winner.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_support import Worker, causal, together

from dataflow import DataFlow
from kaizen.governance import ApprovalStatus, ExternalAgentApprovalManager
from kaizen.governance import ExternalAgentApprovalStorage as Storage
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage
from targets import DB_NAME, TARGETS, reset_database

PROCESSES = 6
GALERA = TARGETS["galera"]


@pytest.fixture
def nodes() -> Iterator[list[str]]:
    """The URL of the run's (empty) test database on each of the three nodes."""
    reset_database("galera")
    yield GALERA.urls(DB_NAME)


async def test_every_node_sets_up_fresh_databases_at_once(nodes: list[str]) -> None:
    names = [f"{DB_NAME}_first_{i}" for i in range(5)]
    for name in names:  # fresh and empty: the instances create every table
        await _admin(f"DROP DATABASE IF EXISTS `{name}`", f"CREATE DATABASE `{name}`")
    try:
        urls = [GALERA.urls(name) for name in names]
        workers = [
            await Worker.start("first-use", urls=[u[i % 3] for u in urls]) for i in range(PROCESSES)
        ]
        results = await together(workers)
        assert results == [[None] * 5] * PROCESSES  # 30 of 30 first uses succeeded
        async with DataFlow(causal(urls[0][0])) as db:
            storage = Storage(db)
            assert await storage.count_by_status(ApprovalStatus.PENDING) == PROCESSES
    finally:
        for name in names:
            await _admin(f"DROP DATABASE IF EXISTS `{name}`")


async def _admin(*statements: str) -> None:
    import asyncmy

    assert GALERA.admin is not None
    conn = await asyncmy.connect(host="127.0.0.1", port=GALERA.admin[1], user="root")
    try:
        async with conn.cursor() as cur:
            for sql in statements:
                await cur.execute(sql)
    finally:
        conn.close()


async def test_merges_from_every_node_keep_every_key(nodes: list[str]) -> None:
    async with DataFlow(nodes[0]) as db:
        session = await NexusSessionManager(
            storage_backend=SessionStorage(db)
        ).create_session_async(user_id="user", ttl_hours=2)
    workers = [
        await Worker.start(
            "merge", url=nodes[i % 3], session=session.session_id, name=f"w{i}", count=200
        )
        for i in range(PROCESSES)
    ]
    results = await together(workers)
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    assert [r["done"] for r in results] == [200] * PROCESSES
    async with DataFlow(causal(nodes[1])) as db:
        loaded = await NexusSessionManager(storage_backend=SessionStorage(db)).load_session_async(
            session.session_id
        )
    assert loaded is not None
    assert len(loaded.state) == PROCESSES * 200  # 1,200 of 1,200


async def test_decisions_across_nodes_are_exactly_once(nodes: list[str]) -> None:
    racers = [f"racer-{i}" for i in range(PROCESSES)]
    async with DataFlow(nodes[0]) as db:
        manager = ExternalAgentApprovalManager(storage_backend=Storage(db))
        manager.set_approvers("agent", racers)
        ids = [await manager.request_approval("agent", "user", {"n": i}) for i in range(24)]
    workers = [
        await Worker.start(
            "race",
            url=nodes[i % 3],
            ids=ids if i % 2 else ids[::-1],
            approver=racer,
            approvers=racers,
        )
        for i, racer in enumerate(racers)
    ]
    results = await together(workers)
    winners = {
        i: [r for r, res in zip(racers, results, strict=True) if i in res["won"]] for i in ids
    }
    wrong = {i: w for i, w in winners.items() if len(w) != 1}
    assert not wrong, (wrong, results)  # 24 races, one winner each
    for res in results:
        assert set(res["won"]) | set(res["lost"]) == set(ids)
        assert set(res["lost"].values()) <= {"approved"}
    async with DataFlow(causal(nodes[2])) as db:
        storage = Storage(db)
        for request_id, [racer] in winners.items():
            request = await storage.load(request_id)
            assert request is not None and request.approved_by == racer
        assert await storage.count_by_status(ApprovalStatus.APPROVED) == len(ids)
        assert (await storage.verify_audit()).ok


async def test_the_galera_target_is_three_synced_nodes(nodes: list[str]) -> None:
    assert len({u.split("@")[1].split("/")[0] for u in nodes}) == 3
    for url in nodes:
        async with DataFlow(url) as db:
            backend = await db._backend()
            rows = await backend.run(
                lambda c: c.fetch(
                    "SELECT @@wsrep_on, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                    "WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE'",
                    [],
                ),
                atomic=False,
            )
        assert [tuple(str(v) for v in r) for r in rows] == [("1", "3")]


async def test_write_batches_are_transactions_on_galera(nodes: list[str]) -> None:
    """A brute-force abort could roll a multi-statement script's transaction back between
    its statements and let the rest run outside it: on Galera a batch is a transaction."""
    async with DataFlow(nodes[0]) as db:
        storage = Storage(db)
        manager = ExternalAgentApprovalManager(storage_backend=storage)
        manager.set_approvers("agent", ["ana"])
        rid = await manager.request_approval("agent", "user", {})
        methods: list[str] = []
        db.on_driver_call(lambda call: methods.append(call.method))
        await manager.approve_request(rid, "ana")
        assert db.dialect.supports_batch_script is False
        assert "script" not in methods and {"begin", "commit"} <= set(methods)
        assert "results" in methods  # reads are still folded: they write nothing
