from dataflow import DataFlow


async def test_insert_and_get(db: DataFlow) -> None:
    @db.model
    class Thing:
        id: str
        name: str

    await db.insert(Thing, {"id": "a", "name": "x"})
    got = await db.get(Thing, "a")
    assert got is not None and got["name"] == "x"
