"""The generator's Mongo writer (customer360/generator/outputs.py) after a write was retried: a
fake collection stands in for MongoDB, as in a unit test."""

from __future__ import annotations

import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from customer360.generator.outputs import DUPLICATE_KEY, MongoOpsWriter


class FakeCollection:
    """Applies ordered inserts by `_id`, stopping at the first duplicate as MongoDB does."""

    def __init__(self, documents_of: dict[int, dict]):
        self.documents_of = documents_of  # id(operation) -> its document
        self.stored: dict[str, dict] = {}

    def bulk_write(self, operations, ordered=True):
        assert ordered
        for index, operation in enumerate(operations):
            document = self.documents_of.get(id(operation))
            key = document["_id"] if document else "update"
            if key in self.stored:
                raise BulkWriteError({"writeErrors": [{"index": index, "code": DUPLICATE_KEY}]})
            self.stored[key] = document


class FakeDatabase:
    name = "fake"

    def __init__(self, collection: FakeCollection):
        self.collection = collection

    def __getitem__(self, name: str) -> FakeCollection:
        return self.collection


def inserts(*ids: str) -> tuple[list[InsertOne], dict[int, dict]]:
    operations = [InsertOne({"_id": i}) for i in ids]
    return operations, {id(op): {"_id": i} for op, i in zip(operations, ids, strict=True)}


def test_an_insert_already_written_by_a_retried_attempt_counts_as_written_and_the_rest_follow():
    operations, documents_of = inserts("a", "b", "c", "d")
    collection = FakeCollection(documents_of)
    collection.stored["b"] = {"_id": "b"}  # the first attempt reached the server
    written = []
    writer = MongoOpsWriter(FakeDatabase(collection), on_written=written.extend)
    writer.submit("orders", operations, ["a", "b", "c", "d"])
    writer.close()
    assert sorted(collection.stored) == ["a", "b", "c", "d"]
    assert written == ["a", "b", "c", "d"]
    assert writer.written == 4


def test_a_duplicate_on_anything_but_an_insert_stops_the_writer():
    collection = FakeCollection({})
    collection.stored["update"] = {}
    writer = MongoOpsWriter(FakeDatabase(collection))
    writer.submit("users", [UpdateOne({"_id": "x"}, {"$set": {"a": 1}})], ["x"])
    with pytest.raises(RuntimeError, match="writing to MongoDB"):
        writer.close()
