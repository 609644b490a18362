#!/usr/bin/env python3
"""Dump or restore one MongoDB database with pymongo only.

Works against MongoDB and the SecantusDB stand-in alike (mongodump is not in the stand-in's
image, and a wire-protocol dump needs nothing but a driver). Layout of a dump folder:
  <collection>.bson          the documents, BSON one after another
  <collection>.indexes.json  the index specs (name, key, unique, expireAfterSeconds...)
Credentials come from the environment: MONGO_HOST, MONGO_PORT, MONGO_USER, MONGO_PASSWORD
(or MONGO_PASSWORD_FILE, a file holding it), MONGO_AUTH_DB, MONGO_DB. The playbooks run it in
a one-off container of the services' image on the backend network (playbooks/tasks/mongo_dump.yml).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import bson
from pymongo import MongoClient

BATCH = 1000
# ...and at most this many bytes of them (a media chunk is 255 KiB).
BATCH_BYTES = 16 * 1024 * 1024
INDEX_OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "collation")


def password() -> str:
    path = os.environ.get("MONGO_PASSWORD_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").rstrip("\n")
    return os.environ["MONGO_PASSWORD"]


def connect():
    client = MongoClient(
        os.environ["MONGO_HOST"],
        int(os.environ["MONGO_PORT"]),
        username=os.environ["MONGO_USER"],
        password=password(),
        authSource=os.environ.get("MONGO_AUTH_DB", "admin"),
        directConnection=True,
        serverSelectionTimeoutMS=10000,
    )
    return client[os.environ["MONGO_DB"]]


def dump(db, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in sorted(db.list_collection_names()):
        if name.startswith("system."):
            continue
        count = 0
        with (folder / f"{name}.bson").open("wb") as out:
            for document in db[name].find({}, batch_size=BATCH):
                out.write(bson.encode(document))
                count += 1
        indexes = [
            {
                "name": ix["name"],
                "key": list(ix["key"].items()),
                **{k: ix[k] for k in INDEX_OPTIONS if k in ix},
            }
            for ix in db[name].list_indexes()
            if ix["name"] != "_id_"
        ]  # the _id index comes with every collection
        (folder / f"{name}.indexes.json").write_text(json.dumps(indexes, default=str))
        counts[name] = count
    return counts


def restore(db, folder: Path) -> dict:
    counts = {}
    for path in sorted(folder.glob("*.bson")):
        name = path.name[: -len(".bson")]
        db[name].drop()
        # Read a document at a time: media chunks make a collection's file large.
        count = 0
        batch: list = []
        with path.open("rb") as source:
            batch_start = 0
            for document in bson.decode_file_iter(source):
                batch.append(document)
                if len(batch) >= BATCH or source.tell() - batch_start >= BATCH_BYTES:
                    db[name].insert_many(batch, ordered=False)
                    count, batch, batch_start = count + len(batch), [], source.tell()
        if batch:
            db[name].insert_many(batch, ordered=False)
            count += len(batch)
        index_file = folder / f"{name}.indexes.json"
        for spec in json.loads(index_file.read_text()) if index_file.exists() else []:
            key = [(field, direction) for field, direction in spec.pop("key")]
            db[name].create_index(key, **spec)
        counts[name] = count
    return counts


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("dump", "restore"):
        print("usage: mongo_dump.py dump|restore FOLDER", file=sys.stderr)
        return 2
    action, folder = sys.argv[1], Path(sys.argv[2])
    counts = (dump if action == "dump" else restore)(connect(), folder)
    print(json.dumps({"action": action, "collections": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
