"""Generated input, thousands of examples per database: either the call succeeds and
the value reads back exactly as the rules store it, or it fails with an error of our
tree and nothing was written.

Examples per property: ``PROPERTY_EXAMPLES`` (default 500 with ``CI=true``: four
properties, 2,000 examples per database; 60 otherwise). With ``CI=true`` the
examples are derandomized, so a CI run is repeatable.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prop_settings import SETTINGS

from dataflow import DataFlow, DataFlowError, Index
from dataflow.jsonvalues import clean_json
from kaizen.governance import (
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
)
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage

T = TypeVar("T")
#: What the calls of the running property came to (checked: both branches are exercised).
OUTCOMES: Counter[str] = Counter()

# -- strategies ------------------------------------------------------------------
# Every strategy comes in two kinds: CLEAN values every rule accepts, and WILD ones
# (clean, hostile and in between). Each example draws one kind for all its inputs,
# so round trips and refusals are both exercised (the ``run`` fixture checks).

_ODD_TEXT = st.sampled_from(
    ["", " ", "a ", "nul\x00", "\ud800", "x\udfffy", "x" * 256, "%_\\", "日本語", "\U0001f600"]
)
CLEAN_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30
)
WILD_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=40) | _ODD_TEXT
CLEAN_ID = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=30)
WILD_ID = CLEAN_ID | WILD_TEXT | st.integers() | st.none() | st.just({}) | st.just(["x"])
CLEAN_INT = st.integers(-(2**63), 2**63 - 1)
WILD_INT = st.integers() | st.sampled_from([2**63, -(2**63) - 1, 2**70])
CLEAN_FLOAT = st.floats(min_value=-9e15, max_value=9e15, allow_nan=False)
WILD_FLOAT = st.floats() | st.sampled_from([-0.0, 1e16, -1e16, 9.999999999999998e15, 1e300])


def _json(leaf: st.SearchStrategy[Any], key: st.SearchStrategy[Any], odd: bool) -> Any:
    def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        made = st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=4)
        if odd:  # tuples, sets, int keys: JSON would change them
            made |= st.tuples(inner) | st.sets(st.integers(), max_size=2)
        return made

    return st.recursive(leaf, containers, max_leaves=12)


CLEAN_SCALAR = st.none() | st.booleans() | CLEAN_INT | CLEAN_FLOAT | CLEAN_TEXT
WILD_SCALAR = st.none() | st.booleans() | WILD_INT | WILD_FLOAT | WILD_TEXT
CLEAN_JSON = _json(CLEAN_SCALAR, CLEAN_TEXT, odd=False)


@st.composite
def _deep(draw: st.DrawFn) -> Any:
    value: Any = draw(WILD_SCALAR)
    for _ in range(draw(st.integers(25, 40))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


WILD_JSON = _json(WILD_SCALAR, WILD_TEXT | st.integers(), odd=True) | _deep()
CLEAN_METADATA = st.dictionaries(CLEAN_TEXT, CLEAN_JSON, max_size=5)
WILD_METADATA = st.dictionaries(WILD_TEXT, WILD_JSON, max_size=5) | WILD_JSON
_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))]
)
CLEAN_DATETIME = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=_ZONES
)
WILD_DATETIME = st.datetimes(timezones=_ZONES) | st.datetimes()  # the calendar's ends; naive


def kinds(**pairs: tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]) -> Any:
    """A dict of one draw per name: all CLEAN, or all WILD (half the examples each)."""
    clean = st.fixed_dictionaries({name: pair[0] for name, pair in pairs.items()})
    wild = st.fixed_dictionaries({name: pair[1] for name, pair in pairs.items()})
    return clean | wild


# -- running examples in one event loop per test -----------------------------------


class Runner:
    """One event loop for all examples of a test (a DataFlow per test, not per example)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)


@pytest.fixture
def run() -> Iterator[Runner]:
    OUTCOMES.clear()
    runner = Runner()
    yield runner
    runner.loop.close()
    print(dict(OUTCOMES))
    calls = sum(OUTCOMES.values())
    # Generated input must reach both sides: stored values and refusals.
    assert OUTCOMES["accepted"] >= calls // 10, OUTCOMES
    assert calls - OUTCOMES["accepted"] >= calls // 10, OUTCOMES


async def _ours_or_value(call: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
    """``(True, result)``, or ``(False, None)`` when the call failed with our error."""
    try:
        result = await call()
    except DataFlowError as exc:
        # The database refusing what our rules let through would differ between databases.
        assert not exc.from_driver, f"the database refused it: {exc!r}"
        OUTCOMES[type(exc).__name__] += 1
        return False, None
    OUTCOMES["accepted"] += 1
    return True, result


def typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its type (``1 == 1.0`` must not pass)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, float) and math.copysign(1, value) < 0 and value == 0:
        return ("-0.0",)
    return (type(value).__name__, value)


# -- dataflow records ----------------------------------------------------------------


def _doc_db(url: str) -> DataFlow:
    db = DataFlow(url)

    @db.model(indexes=[Index("title"), Index("tags", membership=True)])
    class Doc:
        id: str
        title: str = ""
        n: int = 0
        x: float = 0.0
        at: datetime | None = None
        data: dict = {}  # noqa: RUF012 - a DataFlow default
        tags: list = []  # noqa: RUF012

    return db


_FIELD_VALUES = {
    "title": (CLEAN_TEXT, WILD_TEXT),
    "n": (CLEAN_INT, WILD_INT | WILD_FLOAT),
    "x": (CLEAN_FLOAT | CLEAN_INT, WILD_FLOAT | WILD_INT),
    "at": (CLEAN_DATETIME | st.none(), WILD_DATETIME),
    "data": (CLEAN_METADATA, WILD_METADATA),
    "tags": (st.lists(CLEAN_SCALAR, max_size=4), st.lists(WILD_SCALAR, max_size=4) | WILD_JSON),
}
RECORDS = st.tuples(
    kinds(id=(CLEAN_ID, WILD_ID), **_FIELD_VALUES),
    st.sets(st.sampled_from(sorted(_FIELD_VALUES)), max_size=len(_FIELD_VALUES)),
).map(lambda drawn: {k: v for k, v in drawn[0].items() if k == "id" or k not in drawn[1]})


def _expected(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    if "x" in out:
        out["x"] = float(out["x"]) + 0.0
    if "at" in out and out["at"] is not None:
        out["at"] = out["at"].astimezone(UTC)
    for name in ("data", "tags"):
        if name in out:
            out[name] = clean_json(out[name], name)
    return out


def test_records_round_trip_or_are_refused(db_url: str, run: Runner) -> None:
    db = _doc_db(db_url)

    @SETTINGS
    @given(record=RECORDS)
    def example(record: dict[str, Any]) -> None:
        async def check() -> None:
            before = await db.count("Doc")
            ok, _ = await _ours_or_value(lambda: db.insert("Doc", record))
            if not ok:
                assert await db.count("Doc") == before, "a refused insert wrote something"
                return
            got = await db.get("Doc", record["id"])
            assert got is not None
            want = _expected(record)
            assert typed({k: got[k] for k in want}) == typed(want)
            assert await db.delete("Doc", record["id"])

        run(check())

    try:
        example()
    finally:
        run(db.close())


_FIELDS = st.sampled_from(["id", "title", "n", "x", "at", "data", "tags", "created_at"])
_OPS = ["$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$like", "$null"]
_WILD_OPERAND = (
    WILD_SCALAR
    | WILD_DATETIME
    | st.lists(WILD_SCALAR, max_size=3)
    | st.dictionaries(WILD_TEXT, WILD_SCALAR)
)
_CLEAN_OPERAND = {
    "id": CLEAN_ID,
    "title": CLEAN_TEXT,
    "n": CLEAN_INT,
    "x": CLEAN_FLOAT | CLEAN_INT,
    "at": CLEAN_DATETIME,
    "created_at": CLEAN_DATETIME,
    "data": st.none(),
}


@st.composite
def _condition(draw: st.DrawFn, clean: bool) -> tuple[Any, Any]:
    """``(key, condition)``: a field and an operand of its type, or anything at all."""
    if clean:
        field = draw(_FIELDS)
        if field == "tags":
            return field, {"$contains": draw(CLEAN_SCALAR)}
        operand_of = _CLEAN_OPERAND[field]
        op = draw(st.sampled_from(_OPS))
    else:
        field = draw(_FIELDS | WILD_TEXT | st.integers() | st.tuples(st.integers()))
        operand_of = _WILD_OPERAND
        op = draw(st.sampled_from([*_OPS, "$contains"]) | WILD_TEXT)
    if op in ("$in", "$nin"):
        return field, {op: draw(st.lists(operand_of, max_size=3))}
    if op == "$null":
        return field, {op: draw(st.booleans() if clean else _WILD_OPERAND)}
    if op == "$like" and clean:
        return "title", {op: draw(CLEAN_TEXT)}
    operand = draw(operand_of)
    return field, operand if draw(st.booleans()) and op == "$eq" else {op: operand}


def _filters(clean: bool) -> st.SearchStrategy[Any]:
    made = st.recursive(
        st.lists(_condition(clean), max_size=3).map(dict),
        lambda inner: (
            st.dictionaries(
                st.sampled_from(["$and", "$or"]),
                st.lists(inner, min_size=1, max_size=3),
                max_size=1,
            )
            | inner
        ),
        max_leaves=5,
    )
    return made if clean else made | WILD_SCALAR | st.lists(WILD_SCALAR, max_size=2)


CLEAN_ORDER = (
    st.none()
    | _FIELDS
    | st.lists(
        _FIELDS.map(lambda f: "-" + f)
        | _FIELDS
        | st.tuples(_FIELDS, st.sampled_from(["asc", "desc"])),
        max_size=3,
    )
)
WILD_ORDER = (
    CLEAN_ORDER
    | WILD_TEXT
    | st.integers()
    | st.lists(st.tuples(WILD_TEXT, WILD_TEXT, WILD_TEXT), max_size=1)
    | st.tuples(_FIELDS, WILD_TEXT)
)
CLEAN_PAGE = st.none() | st.integers(0, 10)
WILD_PAGE = st.integers() | st.floats() | st.booleans() | WILD_TEXT
QUERIES = kinds(
    filt=(_filters(True), _filters(False)),
    order_by=(CLEAN_ORDER, WILD_ORDER),
    limit=(CLEAN_PAGE, WILD_PAGE),
    offset=(CLEAN_PAGE, WILD_PAGE),
)


def test_queries_answer_or_refuse_with_our_errors(db_url: str, run: Runner) -> None:
    db = _doc_db(db_url)
    seed = [
        {"id": f"s{i}", "title": t, "n": i, "x": i / 2, "tags": [t, i], "data": {"i": i}}
        for i, t in enumerate(["a", "b ", "c%", "日本", ""])
    ]
    run(db.insert_many("Doc", seed))

    @SETTINGS
    @given(query=QUERIES)
    def example(query: dict[str, Any]) -> None:
        async def check() -> None:
            kwargs = {k: query[k] for k in ("limit", "offset") if query[k] is not None}
            filt = query["filt"]
            ok, rows = await _ours_or_value(
                lambda: db.select("Doc", filt, order_by=query["order_by"], **kwargs)
            )
            if ok:
                assert rows is not None and len(rows) <= len(seed)
            counted, n = await _ours_or_value(lambda: db.count("Doc", filt))
            if counted and ok and not kwargs:
                assert n == len(rows or [])
            assert await db.count("Doc") == len(seed)

        run(check())

    try:
        example()
    finally:
        run(db.close())


# -- sessions ----------------------------------------------------------------------

SESSIONS = kinds(
    user=(CLEAN_ID, WILD_ID),
    ttl=(
        st.floats(min_value=0.001, max_value=24 * 365) | st.integers(1, 1000),
        st.floats() | st.integers() | st.sampled_from([1e308, 10**20, 0.0001, "1", None]),
    ),
    updates=(CLEAN_METADATA, WILD_METADATA),
    channel=(st.none() | CLEAN_ID, WILD_TEXT),
    sid=(st.none() | CLEAN_ID, WILD_ID),
)


def test_sessions_store_what_they_accept(db_url: str, run: Runner) -> None:
    db = DataFlow(db_url)
    storage = SessionStorage(db)
    manager = NexusSessionManager(storage_backend=storage)

    @SETTINGS
    @given(case=SESSIONS)
    def example(case: dict[str, Any]) -> None:
        async def check() -> None:
            before = await storage.count_active()
            ok, session = await _ours_or_value(
                lambda: manager.create_session_async(
                    session_id=case["sid"], user_id=case["user"], ttl_hours=case["ttl"]
                )
            )
            if not ok:
                assert await storage.count_active() == before
                return
            assert session is not None
            sid, updates = session.session_id, case["updates"]
            merged, done = await _ours_or_value(
                lambda: manager.update_session_state_async(sid, updates, case["channel"])
            )
            loaded = await manager.load_session_async(sid)
            assert loaded is not None
            if merged:
                assert done is True
                assert typed(loaded.state) == typed(clean_json(updates, "state"))
            else:
                assert loaded.state == {}
            await manager.delete_session_async(sid)

        run(check())

    try:
        example()
    finally:
        run(db.close())


# -- approvals ---------------------------------------------------------------------

APPROVALS = kinds(
    agent=(st.just("agent-1"), st.just("agent-1") | WILD_ID),
    requester=(CLEAN_ID, WILD_ID),
    metadata=(CLEAN_METADATA | st.none(), WILD_METADATA),
    approver=(st.just("lead-456"), st.just("lead-456") | WILD_ID),
    reason=(CLEAN_TEXT, WILD_TEXT | st.none() | st.integers()),
)


def test_approvals_store_what_they_accept(db_url: str, run: Runner) -> None:
    db = DataFlow(db_url)
    storage = ExternalAgentApprovalStorage(db)
    manager = ExternalAgentApprovalManager(storage_backend=storage)
    manager.set_approvers("agent-1", ["lead-456"])

    @SETTINGS
    @given(case=APPROVALS)
    def example(case: dict[str, Any]) -> None:
        async def check() -> None:
            before = await storage.count_by_status(ApprovalStatus.PENDING)
            ok, request_id = await _ours_or_value(
                lambda: manager.request_approval(case["agent"], case["requester"], case["metadata"])
            )
            if not ok:
                after = await storage.count_by_status(ApprovalStatus.PENDING)
                assert after == before, "a refused request was stored"
                return
            assert request_id is not None
            stored = await manager.get_request(request_id)
            assert stored is not None
            want = clean_json(case["metadata"] or {}, "metadata")
            assert typed(stored.request_metadata) == typed(want)
            decided, _ = await _ours_or_value(
                lambda: manager.reject_request(request_id, case["approver"], case["reason"])
            )
            trail = await manager.get_audit_trail(request_id)
            assert len(trail) == (2 if decided else 1), "a refused decision was recorded"
            assert (await manager.verify_audit(request_id)).ok

        run(check())

    try:
        example()
    finally:
        run(db.close())
