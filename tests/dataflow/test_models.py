"""Model declarations: table names, column types, nullability, defaults, refusals."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional

import pytest
from df_support import RawDB

from dataflow import ConfigurationError, DataFlow, DuplicateKeyError, Index, ValidationError
from dataflow.models import snake_case


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("ExternalAgentApprovalRequest", "external_agent_approval_request"),
        ("Thing", "thing"),
        ("HTTPRequest", "http_request"),
        ("UserV2Record", "user_v2_record"),
        ("already_snake", "already_snake"),
    ],
)
def test_snake_case(name: str, table: str) -> None:
    assert snake_case(name) == table


async def test_table_name_is_the_snake_case_of_the_class(db: DataFlow, raw: RawDB) -> None:
    @db.model
    class ExternalAgentApprovalRequest:
        id: str
        status: str

    await db.insert(ExternalAgentApprovalRequest, {"id": "a", "status": "pending"})
    assert "external_agent_approval_request" in await raw.tables()
    assert await raw.scalar("SELECT status FROM external_agent_approval_request") == "pending"


async def test_table_name_can_be_overridden(db: DataFlow, raw: RawDB) -> None:
    @db.model(table="custom_items")
    class Item:
        id: str
        label: str

    await db.insert(Item, {"id": "a", "label": "x"})
    tables = await raw.tables()
    assert "custom_items" in tables
    assert "item" not in tables
    assert await raw.columns("custom_items") == {"id", "label", "created_at", "updated_at"}
    # The model is still addressed by class or class name.
    assert await db.count("Item") == 1


async def test_every_field_kind_round_trips(db: DataFlow) -> None:
    @db.model
    class Everything:
        id: str
        s: str
        i: int
        f: float
        b: bool
        d: datetime
        j: dict
        lst: list

    from datetime import UTC

    now = datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    record = {
        "id": "a",
        "s": "text ' \" \\ ✓" * 100,
        "i": -(2**63),
        "f": -0.000123,
        "b": False,
        "d": now,
        "j": {"k": [1, "v"]},
        "lst": [1, "two"],
    }
    await db.insert(Everything, record)
    got = await db.get(Everything, "a")
    assert got is not None
    assert {k: got[k] for k in record} == record
    assert type(got["i"]) is int and type(got["f"]) is float and type(got["b"]) is bool
    await db.update(Everything, "a", {"i": 2**63 - 1, "f": 7, "b": True})
    got = await db.get(Everything, "a")
    assert got is not None
    assert got["i"] == 2**63 - 1
    assert got["f"] == 7.0 and type(got["f"]) is float
    assert got["b"] is True


async def test_long_strings_and_indexed_strings(db: DataFlow) -> None:
    @db.model(indexes=[Index("code")])
    class Text:
        id: str
        code: str
        body: str

    body = "x" * 100_000
    code = "c" * 255
    await db.insert(Text, {"id": "i" * 255, "code": code, "body": body})
    got = await db.get(Text, "i" * 255)
    assert got is not None and got["body"] == body and got["code"] == code


async def test_optional_fields_are_nullable_and_default_to_none(db: DataFlow) -> None:
    @db.model
    class Profile:
        id: str
        nick: str | None
        age: Optional[int]  # noqa: UP045 - the typing spelling must work too
        seen: datetime | None = None
        meta: dict | None = None

    created = await db.insert(Profile, {"id": "a"})
    assert (created["nick"], created["age"], created["seen"], created["meta"]) == (
        None,
        None,
        None,
        None,
    )
    await db.insert(Profile, {"id": "b", "nick": "bee", "age": 3})
    await db.update(Profile, "b", {"nick": None})
    got = await db.get(Profile, "b")
    assert got is not None and got["nick"] is None and got["age"] == 3


async def test_required_fields_are_not_nullable(db: DataFlow) -> None:
    @db.model
    class Strict:
        id: str
        name: str

    with pytest.raises(ValidationError, match="name"):
        await db.insert(Strict, {"id": "a"})
    with pytest.raises(ValidationError, match="name"):
        await db.insert(Strict, {"id": "a", "name": None})
    await db.insert(Strict, {"id": "b", "name": "x"})
    with pytest.raises(ValidationError, match="name"):
        await db.update(Strict, "b", {"name": None})
    assert await db.count(Strict) == 1


async def test_class_defaults_become_defaults(db: DataFlow) -> None:
    @db.model
    class Settings:
        id: str
        level: int = 3
        ratio: float = 0.5
        on: bool = False
        mode: str = "auto"
        opts: dict = {"a": 1}  # noqa: RUF012 - a model default, copied per record
        tags: list = ["x"]  # noqa: RUF012

    created = await db.insert(Settings, {"id": "a"})
    expected = {"level": 3, "ratio": 0.5, "on": False, "mode": "auto", "opts": {"a": 1}}
    assert {k: created[k] for k in expected} == expected
    stored = await db.get(Settings, "a")
    assert stored is not None
    assert {k: stored[k] for k in (*expected, "tags")} == {**expected, "tags": ["x"]}
    # Given values win over defaults.
    other = await db.insert(Settings, {"id": "b", "level": 9, "tags": []})
    assert other["level"] == 9 and other["tags"] == []


async def test_mutable_defaults_are_not_shared(db: DataFlow) -> None:
    @db.model
    class Bag:
        id: str
        items: list = []  # noqa: RUF012 - a model default, copied per record
        meta: dict = {}  # noqa: RUF012

    first = await db.insert(Bag, {"id": "a"})
    first["items"].append("leak")
    first["meta"]["leak"] = True
    second = await db.insert(Bag, {"id": "b"})
    assert second["items"] == [] and second["meta"] == {}
    assert Bag.items == [] and Bag.meta == {}
    stored = await db.get(Bag, "b")
    assert stored is not None and stored["items"] == [] and stored["meta"] == {}


async def test_dataclass_models_and_default_factories(db: DataFlow) -> None:
    @db.model
    @dataclasses.dataclass
    class Job:
        id: str
        name: str
        steps: list = dataclasses.field(default_factory=list)
        retries: int = 2

    first = await db.insert(Job, {"id": "a", "name": "n"})
    first["steps"].append("leak")
    second = await db.insert(Job, {"id": "b", "name": "n"})
    assert second["steps"] == [] and second["retries"] == 2


@pytest.mark.parametrize(
    "annotation",
    [set, bytes, Decimal, tuple, int | str, Optional[int | str], object, Any, "NotAType"],  # noqa: UP045
)
def test_unsupported_field_types_raise_configuration_error(annotation: Any) -> None:
    db = DataFlow("sqlite:///:memory:")
    cls = type("Odd", (), {"__annotations__": {"id": str, "odd": annotation}})
    with pytest.raises(ConfigurationError):
        db.model(cls)
    assert "Odd" not in db.models and "OddCreateNode" not in db.nodes


@pytest.mark.parametrize(
    "annotations",
    [{"name": str}, {"id": int, "name": str}, {"id": str | None}, {"ident": str}],
)
def test_a_model_needs_id_str(annotations: dict[str, Any]) -> None:
    db = DataFlow("sqlite:///:memory:")
    cls = type("NoId", (), {"__annotations__": annotations})
    with pytest.raises(ConfigurationError, match="id"):
        db.model(cls)
    assert db.models == {}


def test_duplicate_model_or_table_is_refused() -> None:
    db = DataFlow("sqlite:///:memory:")

    @db.model
    class Thing:
        id: str

    with pytest.raises(ConfigurationError):

        @db.model(table="thing")
        class Other:
            id: str

    assert set(db.models) == {"Thing"}


@pytest.mark.parametrize(
    "indexes",
    [
        [Index()],
        [Index("nope")],
        [Index("name", membership=True)],
        [Index("tags", "name", membership=True)],
    ],
)
def test_bad_indexes_raise_configuration_error(indexes: list[Index]) -> None:
    db = DataFlow("sqlite:///:memory:")
    with pytest.raises(ConfigurationError):

        @db.model(indexes=indexes)
        class Thing:
            id: str
            name: str
            tags: list


async def test_unique_index_is_enforced(db: DataFlow) -> None:
    @db.model(indexes=[Index("email", unique=True), Index("org", "slug", unique=True)])
    class Account:
        id: str
        email: str
        org: str
        slug: str

    await db.insert(Account, {"id": "a", "email": "a@x", "org": "o", "slug": "s"})
    with pytest.raises(DuplicateKeyError):
        await db.insert(Account, {"id": "b", "email": "a@x", "org": "o", "slug": "t"})
    with pytest.raises(DuplicateKeyError):
        await db.insert(Account, {"id": "c", "email": "c@x", "org": "o", "slug": "s"})
    await db.insert(Account, {"id": "d", "email": "d@x", "org": "p", "slug": "s"})
    assert await db.count(Account) == 2


async def test_unregistered_model_is_a_validation_error(db: DataFlow) -> None:
    class Stranger:
        id: str

    with pytest.raises(ValidationError, match="Stranger"):
        await db.insert(Stranger, {"id": "a"})
    with pytest.raises(ValidationError, match="Ghost"):
        await db.count("Ghost")
