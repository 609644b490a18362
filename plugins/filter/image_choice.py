"""Filter plugin: docker_host's image choice (roles/docker_host/tasks/image_source.yml).

recorded | store_server_changes(wanted)   the stores whose server would change
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def store_server_changes(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[dict[str, str]]:
    """Each store the record names whose server differs from the one this run would use, as
    {store, was, now}, in the record's order. A store the record does not name (added later)
    or that this run does not deploy is no change."""
    if not isinstance(recorded, dict) or not isinstance(wanted, dict):
        raise AnsibleFilterError(
            f"store_server_changes wants two dicts of store: server, got {type(recorded).__name__} "
            f"and {type(wanted).__name__}"
        )
    return [
        {"store": store, "was": str(was), "now": str(wanted[store])}
        for store, was in recorded.items()
        if store in wanted and str(wanted[store]) != str(was)
    ]


class FilterModule:
    def filters(self):
        return {"store_server_changes": store_server_changes}
