#!/bin/sh
# First start with MONGO_INITDB_ROOT_USERNAME/PASSWORD or PASSWORD_FILE (the upstream image's interface):
# SecantusDB has no such bootstrap, so start it once without auth on the loopback only,
# create the root user, stop it, and remember that in the data folder. Then run "$@".
set -eu
marker=/data/db/.whatsapp-root-created
if [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ] && [ ! -e "$marker" ]; then
  secantusd-py --host 127.0.0.1 --port 27018 --storage-path /data/db --log-level WARNING &
  pid=$!
  python3_bin=/opt/secantus/bin/python
  "$python3_bin" - <<'PY'
import os
import time

from pymongo import MongoClient

client = MongoClient("127.0.0.1", 27018, directConnection=True, serverSelectionTimeoutMS=1000)
for _ in range(60):
    try:
        client.admin.command("ping")
        break
    except Exception:
        time.sleep(0.5)
client.admin.command(
    "createUser",
    os.environ["MONGO_INITDB_ROOT_USERNAME"],
    pwd=os.environ.get("MONGO_INITDB_ROOT_PASSWORD")
    or open(os.environ["MONGO_INITDB_ROOT_PASSWORD_FILE"], encoding="utf-8").read().rstrip("\n"),
    roles=[{"role": "root", "db": "admin"}],
)
print("root user created")
PY
  kill "$pid"
  wait "$pid" || true
  touch "$marker"
fi
exec "$@"
