"""The 11 generated nodes of a model: parameters, results and error cases."""

from __future__ import annotations

from typing import Any

import pytest

from dataflow import DataFlow, DuplicateKeyError, NotFoundError, ValidationError

OPERATIONS = (
    "Create",
    "Read",
    "Update",
    "Delete",
    "List",
    "Upsert",
    "Count",
    "BulkCreate",
    "BulkUpdate",
    "BulkDelete",
    "BulkUpsert",
)


def _thing(db: DataFlow) -> type:
    @db.model
    class Thing:
        id: str
        name: str
        rank: int = 0
        kind: str = "plain"

    return Thing


async def _run(db: DataFlow, op: str, **params: Any) -> Any:
    return await db.nodes[f"Thing{op}Node"].execute(**params)


async def _seed(db: DataFlow, *rows: tuple[str, str, int]) -> None:
    records = [{"id": i, "name": n, "rank": r} for i, n, r in rows]
    assert await _run(db, "BulkCreate", records=records) == len(records)


async def test_every_model_gets_the_eleven_nodes(db: DataFlow) -> None:
    _thing(db)
    assert set(db.nodes) == {f"Thing{op}Node" for op in OPERATIONS}
    assert db.node("ThingReadNode") is db.nodes["ThingReadNode"]
    with pytest.raises(ValidationError, match="NopeNode"):
        db.node("NopeNode")


async def test_create_returns_the_stored_record_with_defaults_and_timestamps(db: DataFlow) -> None:
    _thing(db)
    created = await _run(db, "Create", id="a", name="Alpha")
    assert {k: created[k] for k in ("id", "name", "rank", "kind")} == {
        "id": "a",
        "name": "Alpha",
        "rank": 0,
        "kind": "plain",
    }
    assert created["created_at"] == created["updated_at"]
    assert await _run(db, "Read", id="a") == created


async def test_create_of_a_taken_id_raises_duplicate_key(db: DataFlow) -> None:
    _thing(db)
    await _run(db, "Create", id="a", name="first")
    with pytest.raises(DuplicateKeyError):
        await _run(db, "Create", id="a", name="second")
    stored = await _run(db, "Read", id="a")
    assert stored["name"] == "first"
    assert await _run(db, "Count") == 1


async def test_read_of_a_missing_id_returns_none(db: DataFlow) -> None:
    _thing(db)
    assert await _run(db, "Read", id="missing") is None


async def test_read_rejects_unknown_and_missing_parameters(db: DataFlow) -> None:
    _thing(db)
    with pytest.raises(ValidationError, match="bogus"):
        await _run(db, "Read", id="a", bogus=1)
    with pytest.raises(ValidationError, match="'id'"):
        await _run(db, "Read")


async def test_update_changes_fields_and_returns_the_record(db: DataFlow) -> None:
    _thing(db)
    created = await _run(db, "Create", id="a", name="old", rank=1)
    updated = await _run(db, "Update", id="a", fields={"name": "new"})
    assert updated["name"] == "new"
    assert updated["rank"] == 1
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]
    assert await _run(db, "Read", id="a") == updated


async def test_update_of_a_missing_id_raises_not_found(db: DataFlow) -> None:
    _thing(db)
    with pytest.raises(NotFoundError, match="missing"):
        await _run(db, "Update", id="missing", fields={"name": "x"})
    assert await _run(db, "Count") == 0


async def test_delete_reports_whether_the_record_existed(db: DataFlow) -> None:
    _thing(db)
    await _seed(db, ("a", "A", 1), ("b", "B", 2))
    assert await _run(db, "Delete", id="a") is True
    assert await _run(db, "Delete", id="a") is False
    assert await _run(db, "Read", id="a") is None
    assert await _run(db, "Count") == 1


async def test_upsert_inserts_then_replaces_keeping_created_at(db: DataFlow) -> None:
    _thing(db)
    first = await _run(db, "Upsert", id="a", name="one", rank=5)
    assert first["name"] == "one" and first["rank"] == 5
    second = await _run(db, "Upsert", id="a", name="two")
    assert second["name"] == "two"
    assert second["rank"] == 0  # omitted fields take their defaults, as on insert
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] >= first["updated_at"]
    assert await _run(db, "Count") == 1


async def test_upsert_needs_an_id(db: DataFlow) -> None:
    _thing(db)
    with pytest.raises(ValidationError, match="'id'"):
        await _run(db, "Upsert", name="x")


async def test_count_with_and_without_filter(db: DataFlow) -> None:
    _thing(db)
    assert await _run(db, "Count") == 0
    await _seed(db, ("a", "A", 1), ("b", "B", 2), ("c", "C", 3))
    assert await _run(db, "Count") == 3
    assert await _run(db, "Count", filter={"rank": {"$gte": 2}}) == 2
    assert await _run(db, "Count", filter={"name": "Z"}) == 0


async def test_bulk_create_returns_the_number_inserted(db: DataFlow) -> None:
    _thing(db)
    assert await _run(db, "BulkCreate", records=[]) == 0
    records = [{"id": f"r{i}", "name": f"n{i}"} for i in range(25)]
    assert await _run(db, "BulkCreate", records=records) == 25
    assert await _run(db, "Count") == 25
    assert (await _run(db, "Read", id="r7"))["name"] == "n7"


async def test_bulk_create_with_one_invalid_record_writes_nothing(db: DataFlow) -> None:
    _thing(db)
    records: list[dict[str, Any]] = [{"id": "a", "name": "A"}, {"id": "b", "name": 42}]
    with pytest.raises(ValidationError, match="name"):
        await _run(db, "BulkCreate", records=records)
    assert await _run(db, "Count") == 0


async def test_bulk_create_with_a_duplicate_id_writes_nothing(db: DataFlow) -> None:
    _thing(db)
    await _run(db, "Create", id="taken", name="T")
    records = [{"id": "a", "name": "A"}, {"id": "taken", "name": "X"}, {"id": "c", "name": "C"}]
    with pytest.raises(DuplicateKeyError):
        await _run(db, "BulkCreate", records=records)
    assert await _run(db, "Count") == 1
    assert (await _run(db, "Read", id="taken"))["name"] == "T"
    # Duplicates inside one batch are refused just the same.
    with pytest.raises(DuplicateKeyError):
        await _run(db, "BulkCreate", records=[{"id": "d", "name": "D"}, {"id": "d", "name": "E"}])
    assert await _run(db, "Count") == 1


async def test_bulk_create_needs_a_list(db: DataFlow) -> None:
    _thing(db)
    with pytest.raises(ValidationError, match="records"):
        await _run(db, "BulkCreate", records={"id": "a", "name": "A"})


async def test_bulk_update_returns_rows_matched_even_when_unchanged(db: DataFlow) -> None:
    _thing(db)
    await _seed(db, ("a", "A", 1), ("b", "B", 1), ("c", "C", 2), ("d", "D", 3))
    # "a" and "b" already have kind "plain": a matched row counts even if nothing changes.
    n = await _run(db, "BulkUpdate", filter={"rank": 1}, fields={"kind": "plain"})
    assert n == 2
    n = await _run(db, "BulkUpdate", filter={"rank": {"$gte": 2}}, fields={"kind": "big"})
    assert n == 2
    assert await _run(db, "Count", filter={"kind": "big"}) == 2
    assert await _run(db, "BulkUpdate", filter={"name": "none"}, fields={"kind": "x"}) == 0
    assert await _run(db, "BulkUpdate", filter={}, fields={"rank": 9}) == 4
    assert await _run(db, "Count", filter={"rank": 9}) == 4


async def test_bulk_delete_returns_rows_deleted(db: DataFlow) -> None:
    _thing(db)
    await _seed(db, ("a", "A", 1), ("b", "B", 1), ("c", "C", 2))
    assert await _run(db, "BulkDelete", filter={"rank": 1}) == 2
    assert await _run(db, "BulkDelete", filter={"rank": 1}) == 0
    assert [r["id"] for r in await _run(db, "List")] == ["c"]


async def test_bulk_delete_of_everything_needs_confirm_all(db: DataFlow) -> None:
    _thing(db)
    await _seed(db, ("a", "A", 1), ("b", "B", 2))
    with pytest.raises(ValidationError, match="confirm_all"):
        await _run(db, "BulkDelete", filter={})
    assert await _run(db, "Count") == 2
    assert await _run(db, "BulkDelete", filter={}, confirm_all=True) == 2
    assert await _run(db, "Count") == 0


async def test_bulk_upsert_inserts_and_replaces(db: DataFlow) -> None:
    _thing(db)
    await _seed(db, ("a", "A", 1))
    records = [{"id": "a", "name": "A2", "rank": 7}, {"id": "b", "name": "B", "rank": 8}]
    assert await _run(db, "BulkUpsert", records=records) == 2
    rows = await _run(db, "List", order_by="id")
    assert [(r["id"], r["name"], r["rank"]) for r in rows] == [("a", "A2", 7), ("b", "B", 8)]


async def test_bulk_upsert_with_one_invalid_record_writes_nothing(db: DataFlow) -> None:
    _thing(db)
    await _seed(db, ("a", "A", 1))
    records: list[dict[str, Any]] = [{"id": "a", "name": "changed"}, {"id": "b", "rank": "x"}]
    with pytest.raises(ValidationError):
        await _run(db, "BulkUpsert", records=records)
    assert [(r["id"], r["name"]) for r in await _run(db, "List")] == [("a", "A")]


async def test_list_filter_order_limit_offset(db: DataFlow) -> None:
    _thing(db)
    await _seed(db, ("a", "x", 3), ("b", "y", 1), ("c", "x", 2), ("d", "y", 2), ("e", "x", 1))

    async def ids(**params: Any) -> list[str]:
        return [r["id"] for r in await _run(db, "List", **params)]

    assert sorted(await ids()) == ["a", "b", "c", "d", "e"]
    assert await ids(filter={"name": "x"}, order_by="id") == ["a", "c", "e"]
    assert await ids(order_by="rank") == ["b", "e", "c", "d", "a"]  # ties broken by id
    assert await ids(order_by="-rank") == ["a", "d", "c", "e", "b"]
    assert await ids(order_by=["name", "-rank"]) == ["a", "c", "e", "d", "b"]
    assert await ids(order_by=["-name", "rank", "id"]) == ["b", "d", "e", "c", "a"]
    assert await ids(order_by=[("rank", "desc"), ("id", "asc")]) == ["a", "c", "d", "b", "e"]
    assert await ids(order_by=[("name", "asc"), ("rank", "asc")]) == ["e", "c", "a", "b", "d"]
    assert await ids(order_by="id", limit=2) == ["a", "b"]
    assert await ids(order_by="id", limit=2, offset=2) == ["c", "d"]
    assert await ids(order_by="id", offset=3) == ["d", "e"]
    assert await ids(order_by="id", limit=0) == []
    assert await ids(order_by="id", offset=10) == []
    assert await ids(filter={"name": "y"}, order_by="-id", limit=1) == ["d"]


async def test_list_rejects_bad_order_by_and_negative_limit(db: DataFlow) -> None:
    _thing(db)
    with pytest.raises(ValidationError, match="nope"):
        await _run(db, "List", order_by="nope")
    with pytest.raises(ValidationError, match="sideways"):
        await _run(db, "List", order_by=[("rank", "sideways")])
    with pytest.raises(ValidationError, match="limit"):
        await _run(db, "List", limit=-1)
    with pytest.raises(ValidationError, match="offset"):
        await _run(db, "List", offset=-1)
    with pytest.raises(ValidationError, match="page"):
        await _run(db, "List", page=2)


async def test_nodes_of_two_models_are_independent(db: DataFlow) -> None:
    _thing(db)

    @db.model
    class Other:
        id: str
        value: int

    await _run(db, "Create", id="a", name="A")
    await db.nodes["OtherCreateNode"].execute(id="a", value=1)
    assert await db.nodes["OtherCountNode"].execute() == 1
    assert (await db.nodes["OtherReadNode"].execute(id="a"))["value"] == 1
    assert await _run(db, "Count") == 1


async def test_update_with_unchanged_values_still_finds_the_record(db: DataFlow) -> None:
    # MySQL reports changed rows unless asked for matched rows: a no-op update must not
    # look like a missing record.
    _thing(db)
    await _run(db, "Create", id="a", name="same", rank=1)
    updated = await _run(db, "Update", id="a", fields={"name": "same", "rank": 1})
    assert (updated["name"], updated["rank"]) == ("same", 1)
    assert (await _run(db, "Update", id="a", fields={}))["id"] == "a"
    assert await db.update("Thing", "a", {"rank": 1}) is not None


async def test_bulk_create_of_many_records(db: DataFlow) -> None:
    _thing(db)
    records = [{"id": f"r{i:05d}", "name": "n" * (i % 50), "rank": i} for i in range(3000)]
    assert await _run(db, "BulkCreate", records=records) == 3000
    assert await _run(db, "Count", filter={"rank": {"$gte": 1500}}) == 1500
    last = await _run(db, "List", order_by="-rank", limit=1)
    assert last[0]["id"] == "r02999"
