"""Backups: write, back up, wipe, restore, read (PostgreSQL and MongoDB, as deployed)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
import requests
import yaml
from conftest import ROOT, playbook, tail
from pymongo import ASCENDING, MongoClient
from pymongo.errors import DuplicateKeyError
from stack_client import API, User

SHARED = {}
for path in sorted((ROOT / "group_vars/all").glob("*.yml")):
    SHARED.update(yaml.safe_load(path.read_text()) or {})
SECRETS = yaml.safe_load((ROOT / "inventories/airgapped/group_vars/whatsapp/secrets.yml").read_text())
OWNER = next(login for login in SHARED["postgres_logins"] if login["owns"])
TABLE = f"{OWNER['owns']}.backup_probe_{uuid.uuid4().hex[:8]}"
COLLECTION = f"backup_probe_{uuid.uuid4().hex[:8]}"
ROWS = [f"row-{i}-{uuid.uuid4()}" for i in range(50)]


def pg() -> psycopg.Connection:
    return psycopg.connect(
        host=SHARED["whatsapp_publish_address"],
        port=SHARED["postgres_port"],
        dbname=SHARED["postgres_database"],
        user=OWNER["name"],
        password=SECRETS["postgres_passwords"][OWNER["name"]],
        autocommit=True,
        connect_timeout=5,
    )


def mongo():
    client = MongoClient(
        SHARED["whatsapp_publish_address"],
        SHARED["mongodb_port"],
        directConnection=True,
        username=SHARED["mongodb_app_user"],
        password=SECRETS["mongodb_app_password"],
        authSource=SHARED["mongodb_database"],
        serverSelectionTimeoutMS=5000,
    )
    return client[SHARED["mongodb_database"]][COLLECTION]


@pytest.mark.docker
def test_backup_wipe_restore_round_trip(deployed_stack, tmp_path: Path):
    assert deployed_stack[0].returncode == 0, "the stack did not deploy (see test_site)"
    with pg() as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, note text UNIQUE)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {TABLE} (note) VALUES (%s)", [(r,) for r in ROWS])
    coll = mongo()
    coll.create_index([("message_id", ASCENDING)], unique=True)
    coll.insert_many([{"message_id": r, "seq": i} for i, r in enumerate(ROWS)])
    # A media file (bytes in GridFS): the backup carries it, the restore brings it back.
    owner = User("Backed-up uploader")
    auth = {"Authorization": f"Bearer {owner.api.token}"}
    pdf = b"%PDF-1.7\n" + uuid.uuid4().bytes * 40_000  # ~640 KiB: several GridFS chunks
    uploaded = requests.post(
        f"{API}/media", data=pdf, headers={**auth, "Content-Type": "application/pdf"}, timeout=60
    )
    assert uploaded.status_code == 201, uploaded.text
    media_id = uploaded.json()["id"]

    backup = playbook("playbooks/backup.yml", "-e", f"backup_root={tmp_path}", log="backup.log")
    assert backup.returncode == 0, tail(backup)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (folder / "postgres.dump").stat().st_size > 0
    assert (folder / "mongodb" / f"{COLLECTION}.bson").stat().st_size > 0

    with pg() as conn:
        conn.execute(f"DROP TABLE {TABLE}")
    coll.drop()
    assert mongo().count_documents({}) == 0
    coll.database["media.chunks"].delete_many({"files_id": media_id})
    assert requests.get(f"{API}/media/{media_id}", headers=auth, timeout=60).content != pdf

    restore = playbook("playbooks/restore.yml", "-e", f"backup_folder={folder}", log="restore.log")
    assert restore.returncode == 0, tail(restore)

    with pg() as conn:
        notes = [row[0] for row in conn.execute(f"SELECT note FROM {TABLE} ORDER BY id")]
    assert notes == ROWS
    restored = mongo()
    assert [d["message_id"] for d in restored.find().sort("seq", 1)] == ROWS
    with pytest.raises(DuplicateKeyError):
        restored.insert_one({"message_id": ROWS[0], "seq": -1})
    back = requests.get(f"{API}/media/{media_id}", headers=auth, timeout=60)
    assert back.status_code == 200 and back.content == pdf
    restored.drop()
    with pg() as conn:
        conn.execute(f"DROP TABLE {TABLE}")


def test_restore_refuses_a_folder_that_is_not_a_backup(tmp_path: Path):
    result = playbook("playbooks/restore.yml", "-e", f"backup_folder={tmp_path}")
    assert result.returncode != 0
    assert "backup_folder must name a folder made by playbooks/backup.yml" in result.stdout, tail(result)
