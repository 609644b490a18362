# The message store user's administration, run by the stand-in's own Python inside the
# MongoDB container (tasks/users.yml): the interpreter reads `want` (a JSON line) and then
# this script from its standard input, so no secret is on a command line.
#   action "try":   exit 0 when the user logs in with the wanted password, 3 when it does not.
#   action "write": as the root user (its password from the container's secret file), create
#                   the user or set its password and roles (readWrite on its database only).
import os
import sys

from pymongo import MongoClient
from pymongo.errors import OperationFailure

want = globals()["want"]


def connect(user, password, source):
    return MongoClient(
        "127.0.0.1",
        int(want["port"]),
        username=user,
        password=password,
        authSource=source,
        directConnection=True,
        serverSelectionTimeoutMS=5000,
    )


if want["action"] == "try":
    try:
        connect(want["user"], want["password"], want["db"])[want["db"]].list_collection_names()
    except OperationFailure:
        sys.exit(3)
else:
    with open(os.environ["MONGO_INITDB_ROOT_PASSWORD_FILE"], encoding="utf-8") as handle:
        root_password = handle.read().rstrip("\n")
    database = connect(want["root_user"], root_password, "admin")[want["db"]]
    roles = [{"role": "readWrite", "db": want["db"]}]
    if database.command("usersInfo", want["user"]).get("users"):
        database.command("updateUser", want["user"], pwd=want["password"], roles=roles)
    else:
        database.command("createUser", want["user"], pwd=want["password"], roles=roles)
