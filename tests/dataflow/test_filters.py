"""The filter language: every operator, combinations, NULL semantics, escaping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataflow import DataFlow, Index, ValidationError, escape_like

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _person(db: DataFlow) -> type:
    @db.model(indexes=[Index("tags", membership=True), Index("age")])
    class Person:
        id: str
        name: str
        age: int
        score: float | None = None
        nick: str | None = None
        active: bool = True
        born: datetime | None = None
        tags: list = []  # noqa: RUF012 - a model default, copied per record
        meta: dict | None = None

    return Person


ROWS: list[dict[str, Any]] = [
    {"id": "p1", "name": "Ann", "age": 30, "score": 1.5, "nick": "an", "tags": ["lead", "ops"]},
    {"id": "p2", "name": "Bob", "age": 25, "score": None, "nick": None, "tags": ["lead-456"]},
    {"id": "p3", "name": "Cy", "age": 40, "score": 3.0, "nick": "cy", "active": False},
    {"id": "p4", "name": "Dee", "age": 25, "score": 2.5, "nick": None, "tags": ["ops"]},
]


async def _seeded(db: DataFlow) -> None:
    _person(db)
    rows = [{**r, "born": T0 + timedelta(days=i)} for i, r in enumerate(ROWS)]
    await db.insert_many("Person", rows)


async def _ids(db: DataFlow, filt: Any) -> list[str]:
    rows = await db.select("Person", filt, order_by="id")
    assert await db.count("Person", filt) == len(rows)
    return [r["id"] for r in rows]


# (filter, ids matched): looped in one test per database, as creating tables is the slow part.
OPERATOR_CASES: list[tuple[Any, list[str]]] = [
    ({"name": "Ann"}, ["p1"]),
    ({"age": 25}, ["p2", "p4"]),
    ({"active": False}, ["p3"]),
    ({"active": True}, ["p1", "p2", "p4"]),
    ({"name": {"$eq": "Bob"}}, ["p2"]),
    ({"age": {"$ne": 25}}, ["p1", "p3"]),
    ({"age": {"$lt": 30}}, ["p2", "p4"]),
    ({"age": {"$lte": 30}}, ["p1", "p2", "p4"]),
    ({"age": {"$gt": 30}}, ["p3"]),
    ({"age": {"$gte": 30}}, ["p1", "p3"]),
    ({"age": {"$gt": 24, "$lt": 40}}, ["p1", "p2", "p4"]),
    ({"score": {"$gt": 2.0}}, ["p3", "p4"]),
    ({"score": {"$lte": 1.5}}, ["p1"]),
    ({"born": {"$gte": T0 + timedelta(days=2)}}, ["p3", "p4"]),
    ({"born": T0 + timedelta(days=1)}, ["p2"]),
    ({"name": {"$in": ["Ann", "Cy", "Zed"]}}, ["p1", "p3"]),
    ({"age": {"$in": [25]}}, ["p2", "p4"]),
    ({"name": {"$nin": ["Ann", "Cy"]}}, ["p2", "p4"]),
    ({"name": {"$in": []}}, []),
    ({"name": {"$nin": []}}, ["p1", "p2", "p3", "p4"]),
    ({"name": {"$like": "%e%"}}, ["p4"]),
    ({"name": {"$like": "_o_"}}, ["p2"]),
    ({"name": {"$like": "A%"}}, ["p1"]),
    ({"nick": {"$null": True}}, ["p2", "p4"]),
    ({"nick": {"$null": False}}, ["p1", "p3"]),
    ({"nick": None}, ["p2", "p4"]),
    ({"nick": {"$eq": None}}, ["p2", "p4"]),
    ({"nick": {"$ne": None}}, ["p1", "p3"]),
    ({"meta": {"$null": True}}, ["p1", "p2", "p3", "p4"]),
    ({"tags": {"$contains": "lead"}}, ["p1"]),
    ({"tags": {"$contains": "ops"}}, ["p1", "p4"]),
    ({"tags": {"$contains": "lead-456"}}, ["p2"]),
    ({"tags": {"$contains": "lea"}}, []),
    ({"$or": [{"name": "Ann"}, {"age": 40}]}, ["p1", "p3"]),
    ({"$and": [{"age": 25}, {"nick": {"$null": True}}]}, ["p2", "p4"]),
    (
        {"$and": [{"age": {"$gte": 25}}, {"$or": [{"name": "Bob"}, {"name": "Cy"}]}]},
        ["p2", "p3"],
    ),
    ({"$or": [{"age": 25, "name": "Dee"}, {"tags": {"$contains": "lead"}}]}, ["p1", "p4"]),
    ({"age": 25, "$or": [{"score": None}, {"score": {"$gt": 2}}]}, ["p2", "p4"]),
    ({}, ["p1", "p2", "p3", "p4"]),
    (None, ["p1", "p2", "p3", "p4"]),
]


async def test_every_operator(db: DataFlow) -> None:
    await _seeded(db)
    wrong = [(f, want, got) for f, want in OPERATOR_CASES if (got := await _ids(db, f)) != want]
    assert wrong == []


async def test_ne_and_nin_on_nullable_fields_include_null_rows(db: DataFlow) -> None:
    await _seeded(db)
    # Python semantics, not SQL three-valued logic: None != "an" is true.
    assert await _ids(db, {"nick": {"$ne": "an"}}) == ["p2", "p3", "p4"]
    assert await _ids(db, {"nick": {"$nin": ["an", "cy"]}}) == ["p2", "p4"]
    assert await _ids(db, {"score": {"$ne": 1.5}}) == ["p2", "p3", "p4"]
    assert await _ids(db, {"score": {"$nin": [1.5, 3.0]}}) == ["p2", "p4"]
    # ... while the ordering comparisons never match NULL.
    assert await _ids(db, {"score": {"$lt": 100.0}}) == ["p1", "p3", "p4"]


async def test_same_shape_with_other_values_is_not_confused(db: DataFlow) -> None:
    # Statements are cached by shape: values must never stick to the cached SQL.
    await _seeded(db)
    assert await _ids(db, {"age": {"$in": [25, 30]}}) == ["p1", "p2", "p4"]
    assert await _ids(db, {"age": {"$in": [40, 99]}}) == ["p3"]
    assert await _ids(db, {"$or": [{"name": "Ann"}, {"name": "Bob"}]}) == ["p1", "p2"]
    assert await _ids(db, {"$or": [{"name": "Cy"}, {"name": "Dee"}]}) == ["p3", "p4"]


async def test_like_with_escape_like_matches_wildcards_literally(db: DataFlow) -> None:
    _person(db)
    names = ["100%", "100x", "1000", "a_b", "axb", "back\\slash", "backxslash", "it's"]
    await db.insert_many(
        "Person", [{"id": f"n{i}", "name": n, "age": 1} for i, n in enumerate(names)]
    )

    async def like(pattern: str) -> list[str]:
        # Sorted in Python: string collation order differs between databases.
        return sorted(r["name"] for r in await db.select("Person", {"name": {"$like": pattern}}))

    assert await like("100%") == ["100%", "1000", "100x"]  # unescaped: a wildcard
    assert await like(escape_like("100%")) == ["100%"]
    assert await like(escape_like("a_b")) == ["a_b"]
    assert await like("a_b") == ["a_b", "axb"]
    assert await like(escape_like("back\\slash")) == ["back\\slash"]
    assert await like(escape_like("100") + "%") == ["100%", "1000", "100x"]
    assert await like("%" + escape_like("%")) == ["100%"]
    assert await like(escape_like("it's")) == ["it's"]
    assert await like(escape_like("nothing")) == []


def test_escape_like_output() -> None:
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"
    assert escape_like("plain") == "plain"


async def test_like_is_case_sensitive_or_not_consistently_for_exact_text(db: DataFlow) -> None:
    # Only exact-case behaviour is portable; check that an exact pattern always matches.
    _person(db)
    await db.insert("Person", {"id": "a", "name": "MiXeD", "age": 1})
    assert await _ids(db, {"name": {"$like": "MiXeD"}}) == ["a"]
    assert await _ids(db, {"name": {"$like": "Mi%"}}) == ["a"]


async def test_string_equality_is_exact(db: DataFlow) -> None:
    # No case- or accent-insensitive matching on any database.
    _person(db)
    names = ["Ann", "ann", "Ánn", "ANN"]
    await db.insert_many(
        "Person", [{"id": f"n{i}", "name": n, "age": 1} for i, n in enumerate(names)]
    )
    for i, name in enumerate(names):
        assert await _ids(db, {"name": name}) == [f"n{i}"]
        assert await _ids(db, {"name": {"$in": [name]}}) == [f"n{i}"]


async def test_ids_differing_only_in_case_or_accents_are_distinct(db: DataFlow) -> None:
    _person(db)
    for record_id in ("abc", "ABC", "Abc", "àbc", "abç"):
        await db.insert("Person", {"id": record_id, "name": record_id, "age": 1})
    assert await db.count("Person") == 5
    got = await db.get("Person", "ABC")
    assert got is not None and got["name"] == "ABC"
    assert await db.delete("Person", "Abc") is True
    assert sorted(r["id"] for r in await db.select("Person")) == ["ABC", "abc", "abç", "àbc"]


CONTAINS_ELEMENTS = [
    "Lead",
    "100%",
    "a_b",
    "it's",
    'say "hi"',
    "back\\slash",
    "naïve",
    "日本語",
    "emoji 🎉",
    "",
    " ",
]
CONTAINS_DECOYS = [
    "lead",
    "100x",
    "axb",
    "its",
    "say hi",
    "backslash",
    "naive",
    "日本",
    "emoji",
    "x",
    "  ",
]


async def test_contains_matches_exact_elements_with_special_characters(db: DataFlow) -> None:
    _person(db)
    await db.insert("Person", {"id": "miss", "name": "m", "age": 1, "tags": CONTAINS_DECOYS})
    for i, element in enumerate(CONTAINS_ELEMENTS):
        await db.insert("Person", {"id": f"hit{i}", "name": "h", "age": 1, "tags": ["o", element]})
        await db.insert(
            "Person", {"id": f"long{i}", "name": "l", "age": 1, "tags": [element + "-1"]}
        )
    found = {e: await _ids(db, {"tags": {"$contains": e}}) for e in CONTAINS_ELEMENTS}
    assert found == {e: [f"hit{i}"] for i, e in enumerate(CONTAINS_ELEMENTS)}


async def test_contains_on_numbers_and_bools(db: DataFlow) -> None:
    _person(db)
    await db.insert("Person", {"id": "a", "name": "a", "age": 1, "tags": [1, 2, True]})
    await db.insert("Person", {"id": "b", "name": "b", "age": 1, "tags": ["1", 20]})
    assert await _ids(db, {"tags": {"$contains": 1}}) == ["a"]
    assert await _ids(db, {"tags": {"$contains": "1"}}) == ["b"]
    assert await _ids(db, {"tags": {"$contains": 20}}) == ["b"]
    assert await _ids(db, {"tags": {"$contains": 3}}) == []


async def test_contains_follows_updates_of_the_list(db: DataFlow) -> None:
    _person(db)
    await db.insert("Person", {"id": "a", "name": "a", "age": 1, "tags": ["x"]})
    await db.update("Person", "a", {"tags": ["y"]})
    assert await _ids(db, {"tags": {"$contains": "x"}}) == []
    assert await _ids(db, {"tags": {"$contains": "y"}}) == ["a"]
    await db.update_where("Person", {"id": "a"}, {"tags": ["z", "y"]})
    assert await _ids(db, {"tags": {"$contains": "z"}}) == ["a"]
    await db.upsert("Person", {"id": "a", "name": "a", "age": 1, "tags": ["w"]})
    assert await _ids(db, {"tags": {"$contains": "y"}}) == []
    assert await _ids(db, {"tags": {"$contains": "w"}}) == ["a"]
    await db.delete("Person", "a")
    assert await _ids(db, {"tags": {"$contains": "w"}}) == []


UNKNOWN_CASES: list[tuple[Any, str]] = [
    ({"nope": 1}, "nope"),
    ({"age": {"$regex": "x"}}, r"\$regex"),
    ({"$nor": [{"age": 1}]}, r"\$nor"),
    ({"$or": [{"age": 1}, {"ghost": 2}]}, "ghost"),
    ({"$and": [{"age": {"$between": [1, 2]}}]}, r"\$between"),
]


async def test_unknown_field_or_operator_is_named(db: DataFlow) -> None:
    await _seeded(db)
    for filt, named in UNKNOWN_CASES:
        for call in (
            db.select("Person", filt),
            db.count("Person", filt),
            db.update_where("Person", filt, {"nick": "x"}),
            db.delete_where("Person", filt),
        ):
            with pytest.raises(ValidationError, match=named):
                await call
    assert await db.count("Person") == 4
    assert await db.count("Person", {"nick": "x"}) == 0


BAD_FILTERS: list[Any] = [
    {"age": "thirty"},
    {"age": {"$gt": "1"}},
    {"age": {"$in": "25"}},
    {"name": {"$like": 5}},
    {"age": {"$like": "2%"}},
    {"nick": {"$null": "yes"}},
    {"name": {"$contains": "A"}},
    {"tags": {"$contains": ["lead"]}},
    {"tags": {"$contains": None}},
    {"$or": []},
    {"$or": {"name": "Ann"}},
    {"$and": [{}]},
    {"born": datetime(2024, 1, 1)},
    ["name", "Ann"],
]


async def test_bad_operands_raise_validation_error(db: DataFlow) -> None:
    await _seeded(db)
    for filt in BAD_FILTERS:
        with pytest.raises(ValidationError):
            await db.select("Person", filt)
        with pytest.raises(ValidationError):
            await db.delete_where("Person", filt)
    assert await db.count("Person") == 4


async def test_contains_needs_a_membership_index(db: DataFlow) -> None:
    @db.model
    class Bag:
        id: str
        items: list

    await db.insert(Bag, {"id": "a", "items": ["x"]})
    with pytest.raises(ValidationError, match="items"):
        await db.select(Bag, {"items": {"$contains": "x"}})


async def test_like_is_case_sensitive_on_every_database(db: DataFlow) -> None:
    _person(db)
    await db.insert_many(
        "Person", [{"id": "a", "name": "MiXeD", "age": 1}, {"id": "b", "name": "mixed", "age": 1}]
    )
    assert await _ids(db, {"name": {"$like": "mixed"}}) == ["b"]
    assert await _ids(db, {"name": {"$like": "Mi%"}}) == ["a"]
    assert await _ids(db, {"name": {"$like": "%XeD"}}) == ["a"]


async def test_nulls_sort_the_same_on_every_database(db: DataFlow) -> None:
    await _seeded(db)  # score: p1 1.5, p2 None, p3 3.0, p4 2.5

    async def order(order_by: Any) -> list[str]:
        return [r["id"] for r in await db.select("Person", order_by=order_by)]

    # NULL sorts as the largest value, as in PostgreSQL.
    assert await order("score") == ["p1", "p4", "p3", "p2"]
    assert await order("-score") == ["p2", "p3", "p4", "p1"]
    assert await order(["nick", "id"]) == ["p1", "p3", "p2", "p4"]


async def test_or_under_order_and_limit_pages_like_one_query(db: DataFlow) -> None:
    # On MySQL the $or runs as one query per branch (or_uses_indexes is False there);
    # every database must give the same rows in the same order as this reference.
    @db.model(indexes=[Index("owner", "at"), Index("tags", membership=True)])
    class Doc:
        id: str
        owner: str
        tags: list[str] = []  # noqa: RUF012 - a DataFlow default
        at: datetime | None = None
        rank: int = 0

    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(40):
        at = None if i % 7 == 0 else base + timedelta(seconds=i % 5)  # ties and NULLs
        rows.append(
            {
                "id": f"d{i:02d}",
                "owner": "ann" if i % 3 == 0 else "bob",
                "tags": ["ann"] if i % 4 == 0 else ["x"],
                "at": at,
                "rank": i % 6,
            }
        )
    await db.insert_many("Doc", rows)
    wanted = [r for r in rows if r["owner"] == "ann" or "ann" in r["tags"]]

    def expected(desc: bool, rank_desc: bool) -> list[str]:
        # Keys at, rank, then id in the last key's direction; NULL as the largest value.
        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            null, at = int(r["at"] is None), (r["at"] or base).timestamp()
            when = (-null, -at) if desc else (null, at)
            rank = -r["rank"] if rank_desc else r["rank"]
            codes = tuple(ord(c) for c in r["id"])
            return (when, rank, tuple(-c for c in codes) if rank_desc else codes)

        return [r["id"] for r in sorted(wanted, key=key)]

    filt = {"$or": [{"owner": "ann"}, {"tags": {"$contains": "ann"}}]}
    for desc, rank_desc in ((True, True), (False, False), (True, False)):
        order = [("at", "desc" if desc else "asc"), ("rank", "desc" if rank_desc else "asc")]
        everything = expected(desc, rank_desc)
        for limit, offset in ((5, 0), (5, 5), (100, 0), (3, 19), (4, 30)):
            got = await db.select("Doc", filt, order_by=order, limit=limit, offset=offset)
            assert [r["id"] for r in got] == everything[offset : offset + limit]
    # With more conditions beside the $or, and a $or inside $and (one query everywhere).
    got = await db.select("Doc", {**filt, "rank": {"$gt": 2}}, order_by="-at", limit=50)
    assert {r["id"] for r in got} == {r["id"] for r in wanted if r["rank"] > 2}
    got = await db.select("Doc", {"$and": [filt]}, order_by="-at", limit=50)
    assert {r["id"] for r in got} == {r["id"] for r in wanted}


def test_merged_branches_keep_an_explicit_id_order() -> None:
    from dataflow.or_split import merge_ordered, or_branches

    parts = [
        [{"id": "b", "n": 1}, {"id": "a", "n": 1}],
        [{"id": "c", "n": None}, {"id": "b", "n": 1}],
    ]
    assert [r["id"] for r in merge_ordered(parts, [("n", False), ("id", True)], 10, 0)] == [
        "b",
        "a",
        "c",  # NULL sorts as the largest value
    ]
    assert or_branches({"$or": [{"a": 1}]}) is None  # one branch: nothing to split
    assert or_branches({"$or": [{"a": 1}, 3]}) is None  # malformed: the compiler reports it
