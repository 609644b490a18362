"""Verify the mongodb role with pymongo: auth, inserts, unique index, queries, aggregation."""

from __future__ import annotations

import uuid

import pytest
import whatsapp_testlib as lib
from pymongo import ASCENDING, MongoClient
from pymongo.errors import DuplicateKeyError, OperationFailure

VARS = lib.role_vars()
SPEC = VARS["spec"]
NAME = SPEC["name"]


def client(
    user: str | None = VARS["app_user"],
    password: str | None = VARS["app_password"],
    source: str = VARS["database"],
) -> MongoClient:
    kwargs = {"username": user, "password": password, "authSource": source} if user else {}
    return MongoClient(
        VARS["address"], VARS["port"], directConnection=True, serverSelectionTimeoutMS=5000, **kwargs
    )


@pytest.fixture
def collection():
    name = f"verify_{uuid.uuid4().hex[:8]}"
    coll = client()[VARS["database"]][name]
    yield coll
    coll.drop()


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    if VARS["self_build"]:
        assert "SecantusDB" in data["Config"]["Labels"]["com.whatsapp.stand-in"]


def test_port_published_on_loopback_only(host):
    data = lib.inspect(host, NAME)
    assert lib.published_bindings(data) == {"27017/tcp": [(VARS["address"], str(VARS["port"]))]}
    assert lib.listening_addresses(host, VARS["port"]) == {VARS["address"]}


def test_runs_as_the_declared_non_root_user(host):
    uid_gid = host.check_output("docker exec %s sh -c 'echo $(id -u):$(id -g)'", NAME)
    assert uid_gid == VARS["user"]


def test_ping_answers():
    assert client(user=None).admin.command("ping")["ok"] == 1


def test_unauthenticated_and_wrong_password_are_refused():
    with pytest.raises(OperationFailure):
        client(user=None)[VARS["database"]].list_collection_names()
    with pytest.raises(OperationFailure):
        client(password="wrong-password-0000")[VARS["database"]].list_collection_names()  # noqa: S106


def test_app_user_cannot_touch_other_databases():
    with pytest.raises(OperationFailure):
        client()["admin"]["intrusion"].insert_one({"x": 1})


def test_insert_unique_index_query_and_aggregate(collection):
    collection.create_index([("message_id", ASCENDING)], unique=True)
    collection.create_index([("conversation_id", ASCENDING), ("seq", ASCENDING)])
    docs = [
        {"message_id": f"m{i}", "conversation_id": f"c{i % 2}", "seq": i, "body": f"hello {i}"}
        for i in range(10)
    ]
    collection.insert_many(docs)
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"message_id": "m3", "conversation_id": "c1", "seq": 99})
    page = list(collection.find({"conversation_id": "c0"}).sort("seq", -1).limit(3))
    assert [d["seq"] for d in page] == [8, 6, 4]
    counts = {
        d["_id"]: d["n"]
        for d in collection.aggregate(
            [{"$match": {"seq": {"$gte": 2}}}, {"$group": {"_id": "$conversation_id", "n": {"$sum": 1}}}]
        )
    }
    assert counts == {"c0": 4, "c1": 4}
    collection.update_one({"message_id": "m1"}, {"$set": {"body": None, "deleted": True}})
    assert collection.count_documents({"deleted": True}) == 1


def test_data_survives_container_re_creation(host):
    coll = client()[VARS["database"]]["verify_persistence"]
    marker = str(uuid.uuid4())
    coll.insert_one({"marker": marker})
    lib.recreate(host, NAME)
    assert client()[VARS["database"]]["verify_persistence"].count_documents({"marker": marker}) == 1
